//! The suite's report: `report.md` (tables, the targets with measured values and ratios to the
//! physical probes) and its SVG plots, all from a [`SuiteResults`].
//!
//! Aggregation: a point measured in several rounds shows the median and the range of its
//! throughput; latency percentiles and CDFs come from the first round (a median of
//! percentiles is not a percentile).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::broker::TARGET_RSS_PER_IDLE_CONN_KIB;
use crate::suite::{ProducePoint, ProfileRun, SuiteResults};

/// Target: SYNC_FLUSH produce ÷ fdatasync-bound rate at the broker's mean batch size.
pub const TARGET_SYNC_VS_BOUND: f64 = 0.8;
/// Target: single-producer SYNC_FLUSH p50 ≤ fdatasync p50 + loopback RTT p50 + this.
pub const TARGET_SINGLE_PRODUCER_SLACK_US: f64 = 100.0;
/// Target: SYNC_FLUSH ÷ ASYNC_FLUSH throughput.
pub const TARGET_SYNC_VS_ASYNC: f64 = 0.8;
/// Target: consume ÷ loopback sendfile bandwidth.
pub const TARGET_CONSUME_VS_SENDFILE: f64 = 0.8;
/// Target: epoll ÷ io_uring throughput.
pub const TARGET_EPOLL_VS_IO_URING: f64 = 0.7;

/// The plots, by file name, with what they show.
pub const PLOTS: [(&str, &str); 6] = [
    ("throughput_vs_concurrency.svg", "Produce throughput vs sends in flight"),
    ("latency_cdf_single.svg", "Send latency CDF, lowest concurrency"),
    ("latency_cdf_max.svg", "Send latency CDF, highest concurrency"),
    ("sync_async_ratio.svg", "SYNC_FLUSH ÷ ASYNC_FLUSH throughput"),
    ("backend_ratio.svg", "epoll ÷ io_uring throughput"),
    ("sync_vs_fdatasync_bound.svg", "SYNC_FLUSH ÷ fdatasync-bound rate at the broker's batch size"),
];

/// Writes `report.md` and the plots into `out`.
pub fn write(results: &SuiteResults, out: &Path) -> Result<(), String> {
    let view = View::new(results);
    let plots = [
        view.throughput_plot(),
        view.cdf_plot(false),
        view.cdf_plot(true),
        view.ratio_plot(true),
        view.ratio_plot(false),
        view.bound_plot(),
    ];
    for ((file, _), svg) in PLOTS.iter().zip(plots) {
        let path = out.join(file);
        std::fs::write(&path, svg?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let path = out.join("report.md");
    std::fs::write(&path, view.markdown()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The results arranged for tables and plots.
struct View<'a> {
    r: &'a SuiteResults,
    /// Profile names in the order they were configured (first round's order).
    profiles: Vec<String>,
    concurrency: Vec<usize>,
}

impl<'a> View<'a> {
    fn new(r: &'a SuiteResults) -> View<'a> {
        let mut runs: Vec<&ProfileRun> = r.runs.iter().filter(|run| run.round == 0).collect();
        runs.sort_by_key(|run| (run.profile.flush != "sync", run.profile.backend != "io_uring"));
        let profiles = runs.iter().map(|run| run.profile.name()).collect();
        let mut concurrency: Vec<usize> = r.runs.iter().flat_map(|run| run.produce.iter().map(|p| p.concurrency)).collect();
        concurrency.sort_unstable();
        concurrency.dedup();
        View { r, profiles, concurrency }
    }

    fn runs_of<'s>(&self, profile: &'s str) -> impl Iterator<Item = &'a ProfileRun> + use<'a, 's> {
        self.r.runs.iter().filter(move |run| run.profile.name() == profile)
    }

    fn first_run(&self, profile: &str) -> Option<&'a ProfileRun> {
        self.runs_of(profile).min_by_key(|run| run.round)
    }

    /// The point of the first round.
    fn point(&self, profile: &str, concurrency: usize) -> Option<&'a ProducePoint> {
        self.first_run(profile)?.produce.iter().find(|p| p.concurrency == concurrency)
    }

    /// Median, min, max of msg/s over rounds.
    fn throughput(&self, profile: &str, concurrency: usize) -> Option<Spread> {
        Spread::of(
            self.runs_of(profile)
                .filter_map(|run| run.produce.iter().find(|p| p.concurrency == concurrency))
                .map(|p| p.messages_per_s)
                .collect(),
        )
    }

    fn has(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p == profile)
    }

    fn fdatasync_p50_us(&self) -> (f64, f64) {
        let l = &self.r.probes.fdatasync_latency;
        let idle = l.iter().find(|s| s.wakeups == crate::probe::Wakeups::Idle).map(|s| s.latency.p50_us).unwrap_or(0.0);
        let ticking = l.iter().find(|s| s.wakeups == crate::probe::Wakeups::Ticking).map(|s| s.latency.p50_us).unwrap_or(0.0);
        (idle, ticking)
    }

    fn sendfile_mib_per_s(&self) -> f64 {
        self.r.probes.loopback_sendfile.mib_per_s
    }

    fn rtt_p50_us(&self) -> f64 {
        self.r.probes.loopback_rtt.latency.p50_us
    }

    /// Ratio of median throughputs `num ÷ den` at `concurrency`.
    fn ratio(&self, num: &str, den: &str, concurrency: usize) -> Option<f64> {
        let (n, d) = (self.throughput(num, concurrency)?, self.throughput(den, concurrency)?);
        (d.median > 0.0).then(|| n.median / d.median)
    }

    /// Median over rounds of the consume wire MiB/s of a profile.
    fn consume_mib_per_s(&self, profile: &str) -> Option<Spread> {
        Spread::of(
            self.runs_of(profile)
                .filter_map(|run| run.consume.as_ref()?.get("wire_mib_per_s")?.as_f64())
                .collect(),
        )
    }

    /// Median over rounds of the fdatasync-bound ratio of a SYNC profile's point.
    fn bound_ratio(&self, profile: &str, concurrency: usize) -> Option<Spread> {
        Spread::of(
            self.r
                .bounds
                .iter()
                .filter(|b| b.profile == profile && b.concurrency == concurrency)
                .map(|b| b.ratio)
                .collect(),
        )
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let r = self.r;
        let m = &r.probes.machine;
        let _ = writeln!(md, "# FerroMQ benchmark suite — {}\n", r.started);
        let _ = writeln!(md, "Finished {}. Command:\n\n```sh\n{}\n```\n", r.finished, r.command);
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}), kernel {}, stores and probes in `{}` ({} on {}). The broker, its name server and \
             the load generator share these CPUs. Settings: `{}`.\n",
            m.nproc,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            m.kernel,
            m.dir,
            m.filesystem.as_deref().unwrap_or("?"),
            m.device.as_deref().unwrap_or("?"),
            r.settings
        );
        let failed: u64 = r
            .runs
            .iter()
            .flat_map(|run| run.produce.iter().map(|p| p.errors))
            .sum::<u64>()
            + r.runs
                .iter()
                .filter_map(|run| run.e2e.as_ref()?.get("producer")?.get("codes"))
                .map(crate::suite::error_count)
                .sum::<u64>();
        if failed > 0 {
            let _ = writeln!(
                md,
                "> **Warning: {failed} sends failed during this run; the figures below are not valid.** See \"Errors and fallbacks\" at the end.\n"
            );
        }
        let pct = |p: Option<f64>| p.map_or("?".to_owned(), |p| format!("{p:.0}%"));
        let _ = writeln!(md, "Store file system used: {} at the start, {} at the end.\n", pct(r.disk_used_pct.0), pct(r.disk_used_pct.1));
        let _ = writeln!(
            md,
            "Every point is recorded, not asserted. Compare variants within one run: this machine may be shared and \
             noisy (`--rounds N` repeats the matrix with the profile order rotated; tables then show the median and the range).\n"
        );
        self.probes_section(&mut md);
        self.targets_section(&mut md);
        self.throughput_section(&mut md);
        self.flush_section(&mut md);
        self.consume_section(&mut md);
        self.errors_section(&mut md);
        let _ = writeln!(md, "## Files\n");
        let _ = writeln!(
            md,
            "`results.json` (everything above, with each point's latency CDF), `raw/` (each run's JSON summary), \
             `logs/` (every broker and name server log)."
        );
        md
    }

    fn probes_section(&self, md: &mut String) {
        let p = &self.r.probes;
        let _ = writeln!(md, "## Physical probes\n");
        let _ = writeln!(md, "| probe | idle | ticking |\n|---|---|---|");
        let lat = |w| p.fdatasync_latency.iter().find(|s| s.wakeups == w);
        if let (Some(i), Some(t)) = (lat(crate::probe::Wakeups::Idle), lat(crate::probe::Wakeups::Ticking)) {
            let _ = writeln!(
                md,
                "| fdatasync after a {} B write, p50 / p90 / p99 µs | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} |",
                i.write_bytes, i.latency.p50_us, i.latency.p90_us, i.latency.p99_us, t.latency.p50_us, t.latency.p90_us, t.latency.p99_us
            );
        }
        let mut sizes: Vec<usize> = p.fdatasync_bound.iter().map(|b| b.batch_bytes).collect();
        sizes.dedup();
        for size in sizes {
            let rate = |w| p.fdatasync_bound.iter().find(|b| b.batch_bytes == size && b.wakeups == w).map(|b| b.syncs_per_s).unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| write({size} B) + fdatasync, syncs/s | {:.0} | {:.0} |",
                rate(crate::probe::Wakeups::Idle),
                rate(crate::probe::Wakeups::Ticking)
            );
        }
        let _ = writeln!(
            md,
            "\nSequential write {:.0} MiB/s ({:.0} MiB/s durable); loopback RTT p50 {:.1} µs; loopback sendfile {:.0} MiB/s. \
             \"Ticking\": a helper thread wakes every 100 µs, as a busy server's threads do — an idle VM guest may notice an \
             fdatasync completion only at its next timer tick.\n",
            p.sequential_write.write_mib_per_s,
            p.sequential_write.durable_mib_per_s,
            p.loopback_rtt.latency.p50_us,
            p.loopback_sendfile.mib_per_s
        );
    }

    fn targets_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | where | measured | target value | met |\n|---|---|---|---|---|");
        let max_c = self.concurrency.last().copied().unwrap_or(1);
        let min_c = self.concurrency.first().copied().unwrap_or(1);
        let met = |ok: bool| if ok { "**met**" } else { "**missed**" };
        for backend in ["io_uring", "epoll"] {
            let sync = format!("sync/{backend}");
            if !self.has(&sync) {
                continue;
            }
            // A throughput target: stated at the highest concurrency, where the broker is
            // throughput-bound (at 1 in flight each send also pays a round trip; the flush
            // table below has every point).
            if let Some(s) = self.bound_ratio(&sync, max_c) {
                let _ = writeln!(
                    md,
                    "| SYNC produce ÷ fdatasync-bound rate at the broker's mean batch | {sync}, {max_c} in flight | {} | ≥ {TARGET_SYNC_VS_BOUND} | {} |",
                    s.show(2),
                    met(s.median >= TARGET_SYNC_VS_BOUND)
                );
            }
            if let Some(point) = self.point(&sync, min_c) {
                let (idle, ticking) = self.fdatasync_p50_us();
                // The stricter of the two fdatasync figures sets the limit.
                let limit = idle.min(ticking) + self.rtt_p50_us() + TARGET_SINGLE_PRODUCER_SLACK_US;
                let _ = writeln!(
                    md,
                    "| SYNC send p50 ≤ fdatasync p50 + RTT p50 + {TARGET_SINGLE_PRODUCER_SLACK_US:.0} µs | {sync}, {min_c} in flight | {:.0} µs | ≤ {limit:.0} µs (fdatasync p50 {:.0} idle / {:.0} ticking) | {} |",
                    point.p50_us(),
                    idle,
                    ticking,
                    met(point.p50_us() <= limit)
                );
            }
            self.ratio_rows(md, "SYNC ÷ ASYNC throughput", backend, &sync, &format!("async/{backend}"), TARGET_SYNC_VS_ASYNC);
        }
        for profile in &self.profiles {
            if let Some(s) = self.consume_mib_per_s(profile) {
                let sendfile = self.sendfile_mib_per_s();
                let ratio = if sendfile > 0.0 { s.median / sendfile } else { 0.0 };
                let _ = writeln!(
                    md,
                    "| consume (catch-up of hot data, wire MiB/s) ÷ loopback sendfile | {profile} | {ratio:.2} ({} of {sendfile:.0} MiB/s) | ≥ {TARGET_CONSUME_VS_SENDFILE} | {} |",
                    s.show(0),
                    met(ratio >= TARGET_CONSUME_VS_SENDFILE)
                );
            }
        }
        for profile in &self.profiles {
            let Some(rss) = self.runs_of(profile).find_map(|run| run.rss.as_ref()) else { continue };
            let kib = rss.get("kib_per_connection").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
            let conns = rss.get("connections").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let _ = writeln!(
                md,
                "| RSS per idle connection (one HEART_BEAT each) | {profile}, {conns} connections | {kib:.1} KiB | ≤ {TARGET_RSS_PER_IDLE_CONN_KIB} KiB | {} |",
                met(kib <= TARGET_RSS_PER_IDLE_CONN_KIB)
            );
        }
        for flush in ["sync", "async"] {
            self.ratio_rows(md, "epoll ÷ io_uring throughput", flush, &format!("{flush}/epoll"), &format!("{flush}/io_uring"), TARGET_EPOLL_VS_IO_URING);
        }
        let _ = writeln!(md);
    }

    /// Target rows for the throughput ratio `num ÷ den` at the lowest and highest concurrency.
    fn ratio_rows(&self, md: &mut String, target: &str, place: &str, num: &str, den: &str, at_least: f64) {
        let (min_c, max_c) = (self.concurrency.first().copied().unwrap_or(1), self.concurrency.last().copied().unwrap_or(1));
        let points = if min_c == max_c { vec![min_c] } else { vec![min_c, max_c] };
        for c in points {
            if let Some(ratio) = self.ratio(num, den, c) {
                let verdict = if ratio >= at_least { "**met**" } else { "**missed**" };
                let _ = writeln!(md, "| {target} | {place}, {c} in flight | {ratio:.2} | ≥ {at_least} | {verdict} |");
            }
        }
    }

    fn throughput_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Produce: {} B messages, closed loop\n", self.r.settings.get("message_bytes").unwrap_or(&serde_json::Value::Null));
        let _ = writeln!(md, "![throughput](throughput_vs_concurrency.svg)\n");
        let _ = write!(md, "| in flight (connections × per connection) |");
        for p in &self.profiles {
            let _ = write!(md, " {p} msg/s | p50 / p99 µs |");
        }
        let _ = write!(md, "\n|---|");
        for _ in &self.profiles {
            let _ = write!(md, "---|---|");
        }
        let _ = writeln!(md);
        for &c in &self.concurrency {
            let shape = self
                .profiles
                .iter()
                .find_map(|p| self.point(p, c))
                .map(|p| format!("{} × {}", p.connections, p.in_flight_per_connection))
                .unwrap_or_default();
            let _ = write!(md, "| {c} ({shape}) |");
            for p in &self.profiles {
                match (self.throughput(p, c), self.point(p, c)) {
                    (Some(s), Some(point)) => {
                        let _ = write!(md, " {} | {:.0} / {:.0} |", s.show(0), point.p50_us(), point.p99_us());
                    }
                    _ => {
                        let _ = write!(md, " — | — |");
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "\n![latency, lowest concurrency](latency_cdf_single.svg)\n\n![latency, highest concurrency](latency_cdf_max.svg)\n");
        let _ = writeln!(md, "![sync/async](sync_async_ratio.svg)\n\n![epoll/io_uring](backend_ratio.svg)\n");
    }

    fn flush_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Flush batches (SYNC_FLUSH)\n");
        let _ = writeln!(
            md,
            "The broker's commit-log counters (GET_BROKER_RUNTIME_INFO, summed over shards) over each point's warm-up + run; \
             the bound is `write(batch) + fdatasync` back to back at the point's own mean batch size, measured after the \
             brokers stopped (the faster of idle and ticking).\n"
        );
        let _ = writeln!(md, "![sync vs bound](sync_vs_fdatasync_bound.svg)\n");
        let _ = writeln!(
            md,
            "| profile | in flight | msg/s | fdatasyncs/s | mean batch B | msgs per sync | bound syncs/s (idle / ticking) | ratio |\n|---|---|---|---|---|---|---|---|"
        );
        for b in self.r.bounds.iter().filter(|b| b.round == 0) {
            let point = self.point(&b.profile, b.concurrency);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {:.0} ({:.0} / {:.0}) | {:.2} |",
                b.profile,
                b.concurrency,
                point.map(|p| p.messages_per_s).unwrap_or(0.0),
                b.broker_syncs_per_s,
                b.batch_bytes,
                point.map(ProducePoint::messages_per_sync).unwrap_or(0.0),
                b.bound_syncs_per_s,
                b.idle.syncs_per_s,
                b.ticking.syncs_per_s,
                b.ratio
            );
        }
        let _ = writeln!(md);
    }

    fn consume_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Consume and end-to-end\n");
        let _ = writeln!(
            md,
            "Catch-up: one connection pulls every queue of the produce topic from offset 0 (32 messages per pull) until \
             drained; the data is hot in the page cache, so this is the delivery path's capacity. End-to-end: 1 producer \
             (1 in flight) and a long-polling tail consumer, send → receive.\n"
        );
        let _ = writeln!(
            md,
            "| profile | catch-up msg/s | wire MiB/s | ÷ sendfile | msgs per pull | pull p50 / p99 µs | e2e p50 / p99 / p99.9 µs |\n|---|---|---|---|---|---|---|"
        );
        let sendfile = self.sendfile_mib_per_s();
        for profile in &self.profiles {
            let Some(run) = self.first_run(profile) else { continue };
            let c = run.consume.as_ref();
            let f = |v: Option<&serde_json::Value>, k: &str| v.and_then(|v| v.get(k)).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            let pull = c.and_then(|c| c.get("pull_latency_us"));
            let e2e = run.e2e.as_ref().and_then(|e| e.get("consumer")).and_then(|c| c.get("e2e_latency_us"));
            let wire = f(c, "wire_mib_per_s");
            let _ = writeln!(
                md,
                "| {profile} | {:.0} | {wire:.0} | {:.2} | {:.1} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} |",
                f(c, "messages_per_s"),
                if sendfile > 0.0 { wire / sendfile } else { 0.0 },
                f(c, "mean_messages_per_pull"),
                f(pull, "p50"),
                f(pull, "p99"),
                f(e2e, "p50"),
                f(e2e, "p99"),
                f(e2e, "p99_9")
            );
        }
        let _ = writeln!(md);
    }

    fn errors_section(&self, md: &mut String) {
        let mut lines = Vec::new();
        for run in &self.r.runs {
            if run.backend_logged.as_deref().is_some_and(|b| b != run.profile.backend) {
                lines.push(format!(
                    "- {} round {}: the broker logged backend={} (fallback)",
                    run.profile.name(),
                    run.round + 1,
                    run.backend_logged.as_deref().unwrap_or("?")
                ));
            }
            for p in run.produce.iter().filter(|p| p.errors > 0) {
                lines.push(format!("- {} round {}, {} in flight: {} failed sends: {}", run.profile.name(), run.round + 1, p.concurrency, p.errors, p.codes));
            }
            let e2e_codes = run.e2e.as_ref().and_then(|e| e.get("producer")).and_then(|p| p.get("codes"));
            if let Some(codes) = e2e_codes.filter(|c| crate::suite::error_count(c) > 0) {
                lines.push(format!("- {} round {}, end-to-end producer: {} failed sends: {codes}", run.profile.name(), run.round + 1, crate::suite::error_count(codes)));
            }
            if let Some(gaps) = run.consume.as_ref().and_then(|c| c.get("gaps")).and_then(serde_json::Value::as_u64).filter(|g| *g > 0) {
                lines.push(format!("- {} round {}: consume saw {gaps} offset gaps", run.profile.name(), run.round + 1));
            }
        }
        let _ = writeln!(md, "## Errors and fallbacks\n");
        if lines.is_empty() {
            let _ = writeln!(md, "None: every send was answered SUCCESS, every profile ran on the backend it named, no consume gaps.\n");
        } else {
            let _ = writeln!(md, "{}\n", lines.join("\n"));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Plots

    fn throughput_plot(&self) -> Result<String, String> {
        let series = self
            .profiles
            .iter()
            .map(|p| Series {
                name: p.clone(),
                points: self.concurrency.iter().filter_map(|&c| Some((log2(c), self.throughput(p, c)?.median))).collect(),
            })
            .collect::<Vec<_>>();
        line_chart(&Chart {
            title: "Produce throughput (closed loop)",
            x_desc: "sends in flight (all connections)",
            y_desc: "messages/s",
            series,
            x_axis: Axis::Log2,
            y_axis: Axis::Linear,
            y_from_zero: true,
            target: None,
            legend: SeriesLabelPosition::UpperLeft,
        })
    }

    fn cdf_plot(&self, highest: bool) -> Result<String, String> {
        let c = if highest { self.concurrency.last() } else { self.concurrency.first() }.copied().unwrap_or(1);
        let series = self
            .profiles
            .iter()
            .filter_map(|p| {
                let point = self.point(p, c)?;
                let points = point
                    .latency_cdf_us
                    .iter()
                    .filter(|(_, us)| *us > 0.0)
                    .map(|&(q, us)| (us.log10(), nines(q)))
                    .collect();
                Some(Series { name: p.clone(), points })
            })
            .collect::<Vec<_>>();
        let title = format!("Send latency CDF, {c} in flight");
        line_chart(&Chart {
            title: &title,
            x_desc: "latency (µs)",
            y_desc: "percentile",
            series,
            x_axis: Axis::Log10,
            y_axis: Axis::Nines,
            y_from_zero: true,
            target: None,
            legend: SeriesLabelPosition::LowerRight,
        })
    }

    /// sync ÷ async per backend (`flush_ratio`), or epoll ÷ io_uring per flush mode.
    fn ratio_plot(&self, flush_ratio: bool) -> Result<String, String> {
        let pairs: Vec<(String, String, String)> = if flush_ratio {
            ["io_uring", "epoll"].iter().map(|b| (b.to_string(), format!("sync/{b}"), format!("async/{b}"))).collect()
        } else {
            ["sync", "async"].iter().map(|f| (format!("{f} flush"), format!("{f}/epoll"), format!("{f}/io_uring"))).collect()
        };
        let series = pairs
            .into_iter()
            .map(|(name, num, den)| Series {
                name,
                points: self.concurrency.iter().filter_map(|&c| Some((log2(c), self.ratio(&num, &den, c)?))).collect(),
            })
            .collect();
        let (title, target) = if flush_ratio {
            ("SYNC_FLUSH ÷ ASYNC_FLUSH throughput", TARGET_SYNC_VS_ASYNC)
        } else {
            ("epoll ÷ io_uring throughput", TARGET_EPOLL_VS_IO_URING)
        };
        line_chart(&Chart {
            title,
            x_desc: "sends in flight (all connections)",
            y_desc: "ratio",
            series,
            x_axis: Axis::Log2,
            y_axis: Axis::Linear,
            y_from_zero: true,
            target: Some(target),
            legend: SeriesLabelPosition::LowerRight,
        })
    }

    fn bound_plot(&self) -> Result<String, String> {
        let series = self
            .profiles
            .iter()
            .filter(|p| p.starts_with("sync/"))
            .map(|p| Series {
                name: p.clone(),
                points: self.concurrency.iter().filter_map(|&c| Some((log2(c), self.bound_ratio(p, c)?.median))).collect(),
            })
            .collect();
        line_chart(&Chart {
            title: "SYNC_FLUSH ÷ fdatasync-bound rate at the broker's mean batch",
            x_desc: "sends in flight (all connections)",
            y_desc: "ratio",
            series,
            x_axis: Axis::Log2,
            y_axis: Axis::Linear,
            y_from_zero: true,
            target: Some(TARGET_SYNC_VS_BOUND),
            legend: SeriesLabelPosition::LowerRight,
        })
    }
}

/// Median and range of a set of samples.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Option<Spread> {
        samples.retain(|s| s.is_finite());
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 };
        Some(Spread { median, min: samples[0], max: samples[n - 1], n })
    }

    /// `median` or `median (min–max)` with `decimals`.
    fn show(&self, decimals: usize) -> String {
        if self.n == 1 {
            format!("{:.*}", decimals, self.median)
        } else {
            format!("{:.*} ({:.*}–{:.*})", decimals, self.median, decimals, self.min, decimals, self.max)
        }
    }
}

fn log2(c: usize) -> f64 {
    (c.max(1) as f64).log2()
}

/// "Nines" of a quantile: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9 … (capped at 5 for the max).
fn nines(q: f64) -> f64 {
    if q >= 1.0 { 5.0 } else { (-(1.0 - q).log10()).min(5.0) }
}

/// How an axis maps plotted values to labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Linear,
    /// Values are log2 of the quantity; labels show the quantity.
    Log2,
    /// Values are log10 of the quantity; labels show the quantity.
    Log10,
    /// Values are [`nines`]; labels show the percentile.
    Nines,
}

impl Axis {
    fn label(self, v: f64) -> String {
        match self {
            Axis::Linear => {
                if v.abs() >= 10_000.0 {
                    format!("{:.0}k", v / 1_000.0)
                } else if v.fract().abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            }
            // Only whole powers of two are labelled (the mesh also has lines between them).
            Axis::Log2 if (v - v.round()).abs() > 1e-6 => String::new(),
            Axis::Log2 => format!("{:.0}", 2f64.powf(v.round())),
            Axis::Log10 => {
                let x = 10f64.powf(v);
                if x >= 1_000.0 { format!("{:.0}k", x / 1_000.0) } else { format!("{x:.0}") }
            }
            Axis::Nines => {
                if v >= 4.99 {
                    "max".to_owned()
                } else {
                    let pct = 100.0 * (1.0 - 10f64.powf(-v));
                    format!("p{}", trim_zeros(&format!("{pct:.3}")))
                }
            }
        }
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s.to_owned() }
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    series: Vec<Series>,
    x_axis: Axis,
    y_axis: Axis,
    y_from_zero: bool,
    /// A dashed-grey horizontal line at the target value.
    target: Option<f64>,
    /// Where the legend goes: a corner the data leaves empty.
    legend: SeriesLabelPosition,
}

const PALETTE: [RGBColor; 6] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(255, 127, 14), RGBColor(23, 190, 207)];

/// An SVG line chart (lines with point markers, a legend, an optional target line).
fn line_chart(chart: &Chart<'_>) -> Result<String, String> {
    let all = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let bounds = |f: fn((f64, f64)) -> f64| {
        all().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (mut x0, mut x1) = bounds(|p| p.0);
    let (mut y0, mut y1) = bounds(|p| p.1);
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let Some(t) = chart.target {
        (y0, y1) = (y0.min(t), y1.max(t));
    }
    if chart.y_from_zero {
        y0 = y0.min(0.0);
    }
    // Room around single points and at the top for the legend.
    if x1 - x0 < 1e-9 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let x_pad = (x1 - x0) * 0.05;
    (x0, x1) = (x0 - x_pad, x1 + x_pad);
    y1 = if y1 - y0 < 1e-9 { y0 + 1.0 } else { y1 + (y1 - y0) * 0.15 };

    let mut svg = String::new();
    {
        let err = |e: DrawingAreaErrorKind<_>| format!("plot {:?}: {e:?}", chart.title);
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let (x_axis, y_axis) = (chart.x_axis, chart.y_axis);
        let x_fmt = move |v: &f64| x_axis.label(*v);
        let y_fmt = move |v: &f64| y_axis.label(*v);
        // Enough key points that every whole power of two is one (steps of 1/2 or 1/4).
        let x_labels = if chart.x_axis == Axis::Log2 { ((x1 - x0) * 4.0).ceil() as usize + 1 } else { 10 };
        ctx.configure_mesh()
            .x_labels(x_labels)
            .x_desc(chart.x_desc)
            .y_desc(chart.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        if let Some(t) = chart.target {
            let grey = RGBColor(120, 120, 120);
            ctx.draw_series(DashedLineSeries::new([(x0, t), (x1, t)], 8, 6, grey.stroke_width(1)))
                .map_err(err)?
                .label(format!("target {t}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
        }
        for (i, s) in chart.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            ctx.draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
        }
        ctx.configure_series_labels()
            .position(chart.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels() {
        assert_eq!(Axis::Log2.label(4.0), "16");
        assert_eq!(Axis::Log2.label(0.5), "");
        assert_eq!(Axis::Log10.label(3.0), "1k");
        assert_eq!(Axis::Nines.label(0.0), "p0");
        assert_eq!(Axis::Nines.label(1.0), "p90");
        assert_eq!(Axis::Nines.label(3.0), "p99.9");
        assert_eq!(Axis::Nines.label(5.0), "max");
        assert_eq!(Axis::Linear.label(25_000.0), "25k");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn spread_median_and_range() {
        let s = Spread::of(vec![3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(vec![1.0, 4.0]).unwrap().median, 2.5);
        assert!(Spread::of(vec![]).is_none());
        assert_eq!(Spread::of(vec![7.0]).unwrap().show(0), "7");
    }

    #[test]
    fn chart_is_svg_with_every_series_and_the_target() {
        let chart = Chart {
            title: "t",
            x_desc: "x",
            y_desc: "y",
            series: vec![
                Series { name: "sync/io_uring".into(), points: vec![(0.0, 1.0), (2.0, 3.0)] },
                Series { name: "async/epoll".into(), points: vec![(0.0, 2.0)] },
                Series { name: "empty".into(), points: vec![] },
            ],
            x_axis: Axis::Log2,
            y_axis: Axis::Linear,
            y_from_zero: true,
            target: Some(0.8),
            legend: SeriesLabelPosition::UpperLeft,
        };
        let svg = line_chart(&chart).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        for label in ["sync/io_uring", "async/epoll", "target 0.8"] {
            assert!(svg.contains(label), "{label} missing");
        }
        // No data at all still draws an (empty) chart rather than failing.
        let empty = Chart { series: vec![], target: None, ..chart };
        assert!(line_chart(&empty).unwrap().contains("<svg"));
    }
}
