//! The suite's report: `report.md` (tables, the targets with measured values and ratios to the
//! physical probes) and its SVG plots, all from a [`SuiteResults`].
//!
//! Aggregation: a point measured in several rounds shows the median and the range of its
//! throughput; latency percentiles and CDFs come from the first round (a median of
//! percentiles is not a percentile).
//!
//! The targets of issue 14 (CPU per message, width, cross-shard) are computed once by
//! [`issue14_targets`], as data: `results.json` carries them and `report.md` shows them.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::broker::TARGET_RSS_PER_IDLE_CONN_KIB;
use crate::cpu::CpuReport;
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

// Issue 14: CPU per message, width, cross-shard work.
/// Sends in flight of the issue's load point: 4 connections × 64 (with `--max-connections 4`).
/// A run without this point is judged at its highest concurrency.
pub const ISSUE14_CONCURRENCY: usize = 256;
/// Broker CPU µs per acknowledged 1 KiB single send at [`ISSUE14_CONCURRENCY`], ASYNC_FLUSH.
pub const TARGET_BROKER_US_PER_SEND: f64 = 5.0;
/// … and at most this many times the load generator's CPU per send.
pub const TARGET_BROKER_PER_GENERATOR: f64 = 1.5;
/// Broker CPU µs per message in batches (`--batch-messages`, 16) at the same point.
pub const TARGET_BROKER_US_PER_BATCHED_MESSAGE: f64 = 1.0;
/// Broker CPU µs per send with one send in flight.
pub const TARGET_BROKER_US_PER_SINGLE_SEND: f64 = 30.0;
/// Broker CPU µs per record of a catch-up read (8 queues, one 32-record pull in flight each).
pub const TARGET_BROKER_US_PER_CONSUMED_RECORD: f64 = 0.5;
/// Pull p50 for 32 hot records with 8 pulls in flight, µs.
pub const TARGET_PULL_P50_US: f64 = 150.0;
/// Single-producer SYNC_FLUSH p50 ≤ fdatasync p50 + loopback RTT p50 + this (issue 14).
pub const TARGET14_SINGLE_PRODUCER_SLACK_US: f64 = 50.0;
/// Many queues ÷ few queues (consume), many topics ÷ few topics (produce).
pub const TARGET_WIDTH_RATIO: f64 = 0.8;
/// Throughput lost when every send's queue lives on another shard: 1 − cross ÷ owner.
pub const TARGET_CROSS_SHARD_PENALTY: f64 = 0.10;

/// A point that ends with more than this not yet dispatched gets a note in its target row.
pub const DISPATCH_LAG_NOTE_BYTES: u64 = 16 << 20;

/// The plots, by file name, with what they show.
pub const PLOTS: [(&str, &str); 7] = [
    ("throughput_vs_concurrency.svg", "Produce throughput vs sends in flight"),
    ("latency_cdf_single.svg", "Send latency CDF, lowest concurrency"),
    ("latency_cdf_max.svg", "Send latency CDF, highest concurrency"),
    ("sync_async_ratio.svg", "SYNC_FLUSH ÷ ASYNC_FLUSH throughput"),
    ("backend_ratio.svg", "epoll ÷ io_uring throughput"),
    ("sync_vs_fdatasync_bound.svg", "SYNC_FLUSH ÷ fdatasync-bound rate at the broker's batch size"),
    ("cpu_per_message.svg", "Broker and load-generator CPU per acknowledged send"),
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
        view.cpu_plot(),
    ];
    for ((file, _), svg) in PLOTS.iter().zip(plots) {
        let path = out.join(file);
        std::fs::write(&path, svg?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let path = out.join("report.md");
    std::fs::write(&path, view.markdown()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One target of issue 14 at one place, with its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub target: String,
    /// Profile and point.
    pub place: String,
    /// The value compared with the limit (median over rounds); `None`: not measured.
    pub measured: Option<f64>,
    /// The measured value as shown, with its unit and context.
    pub shown: String,
    pub limit: f64,
    /// `true`: met when `measured ≤ limit`; `false`: when `measured ≥ limit`.
    pub at_most: bool,
    /// The limit as shown (`≤ 5 µs`).
    pub limit_shown: String,
    /// `measured ÷ limit`.
    pub vs_limit: Option<f64>,
    pub met: Option<bool>,
}

impl TargetRow {
    fn new(target: &str, place: String, measured: Option<f64>, shown: String, limit: f64, at_most: bool, limit_shown: String) -> TargetRow {
        let measured = measured.filter(|m| m.is_finite());
        TargetRow {
            target: target.to_owned(),
            place,
            measured,
            shown: if measured.is_some() { shown } else { "not measured".to_owned() },
            limit,
            at_most,
            limit_shown,
            vs_limit: measured.filter(|_| limit != 0.0).map(|m| m / limit),
            met: measured.map(|m| if at_most { m <= limit } else { m >= limit }),
        }
    }
}

/// The targets of issue 14 ("recorded beside the machine's probes, as ratios; not asserted"),
/// one row per target and profile that measured it.
pub fn issue14_targets(r: &SuiteResults) -> Vec<TargetRow> {
    let view = View::new(r);
    let mut rows = Vec::new();
    // The issue's load point; a run without it (other --concurrency) is judged at its highest.
    let c = if view.concurrency.contains(&ISSUE14_CONCURRENCY) { ISSUE14_CONCURRENCY } else { view.concurrency.last().copied().unwrap_or(1) };
    let us = |s: &Spread, d: usize| format!("{} µs", s.show(d));
    for profile in view.profiles.iter().filter(|p| p.starts_with("async/")) {
        let shape = view.point(profile, c).map(ProducePoint::shape).unwrap_or_else(|| format!("{c} in flight"));
        let broker = view.over_rounds(profile, |run| cpu_of(run.produce.iter().find(|p| p.concurrency == c))?.broker_us_per_message);
        let generator = view.over_rounds(profile, |run| cpu_of(run.produce.iter().find(|p| p.concurrency == c))?.generator_us_per_message);
        rows.push(TargetRow::new(
            "Broker CPU per acknowledged 1 KiB send",
            format!("{profile}, {shape}"),
            broker.map(|s| s.median),
            format!(
                "{} (generator {}){}",
                broker.map_or(String::new(), |s| us(&s, 1)),
                generator.map_or("?".to_owned(), |s| us(&s, 1)),
                lag_note(view.point(profile, c))
            ),
            TARGET_BROKER_US_PER_SEND,
            true,
            format!("≤ {TARGET_BROKER_US_PER_SEND} µs"),
        ));
        let ratio = view.over_rounds(profile, |run| cpu_of(run.produce.iter().find(|p| p.concurrency == c))?.broker_per_generator);
        rows.push(TargetRow::new(
            "Broker ÷ load-generator CPU per send",
            format!("{profile}, {shape}"),
            ratio.map(|s| s.median),
            ratio.map_or(String::new(), |s| s.show(2)),
            TARGET_BROKER_PER_GENERATOR,
            true,
            format!("≤ {TARGET_BROKER_PER_GENERATOR}"),
        ));
        // Only profiles that ran the batch point (`--extra-backends`).
        if let Some(b) = view.first_run(profile).and_then(|run| run.batch.as_ref()) {
            let batch = view.over_rounds(profile, |run| cpu_of(run.batch.as_ref())?.broker_us_per_message);
            let batch_place = format!("{profile}, batches of {}, {}", b.batch, b.shape());
            rows.push(TargetRow::new(
                "Broker CPU per message in batches",
                batch_place,
                batch.map(|s| s.median),
                batch.map_or(String::new(), |s| us(&s, 2)),
                TARGET_BROKER_US_PER_BATCHED_MESSAGE,
                true,
                format!("≤ {TARGET_BROKER_US_PER_BATCHED_MESSAGE} µs"),
            ));
        }
        let single = view.over_rounds(profile, |run| cpu_of(run.produce.iter().find(|p| p.concurrency == 1))?.broker_us_per_message);
        rows.push(TargetRow::new(
            "Broker CPU per send, one send in flight",
            format!("{profile}, 1 × 1"),
            single.map(|s| s.median),
            single.map_or(String::new(), |s| us(&s, 1)),
            TARGET_BROKER_US_PER_SINGLE_SEND,
            true,
            format!("≤ {TARGET_BROKER_US_PER_SINGLE_SEND} µs"),
        ));
    }
    for profile in &view.profiles {
        let consume_cpu = |run: &ProfileRun| CpuReport::from_summary(run.consume.as_ref()?);
        let per_record = view.over_rounds(profile, |run| consume_cpu(run)?.broker_us_per_message);
        let generator = view.over_rounds(profile, |run| consume_cpu(run)?.generator_us_per_message);
        rows.push(TargetRow::new(
            "Broker CPU per consumed 1 KiB record, catch-up",
            format!("{profile}, {} queues × one 32-record pull", r.settings.get("queues").and_then(serde_json::Value::as_u64).unwrap_or(0)),
            per_record.map(|s| s.median),
            format!("{} (consumer {})", per_record.map_or(String::new(), |s| us(&s, 2)), generator.map_or("?".to_owned(), |s| us(&s, 2))),
            TARGET_BROKER_US_PER_CONSUMED_RECORD,
            true,
            format!("≤ {TARGET_BROKER_US_PER_CONSUMED_RECORD} µs"),
        ));
        let p50 = view.first_run(profile).and_then(|run| run.consume.as_ref()?.get("pull_latency_us")?.get("p50")?.as_f64());
        rows.push(TargetRow::new(
            "Pull p50, 32 hot records, one pull in flight per queue",
            format!("{profile}, {} pulls in flight", r.settings.get("queues").and_then(serde_json::Value::as_u64).unwrap_or(0)),
            p50,
            p50.map_or(String::new(), |v| format!("{v:.0} µs")),
            TARGET_PULL_P50_US,
            true,
            format!("≤ {TARGET_PULL_P50_US} µs"),
        ));
    }
    for backend in ["io_uring", "epoll"] {
        let sync = format!("sync/{backend}");
        if !view.has(&sync) {
            continue;
        }
        let shape = view.point(&sync, c).map(ProducePoint::shape).unwrap_or_else(|| format!("{c} in flight"));
        let bound = view.bound_ratio(&sync, c);
        let bound_detail = view.r.bounds.iter().find(|b| b.profile == sync && b.concurrency == c && b.round == 0);
        rows.push(TargetRow::new(
            "SYNC ÷ fdatasync-bound rate at the broker's own mean batch",
            format!("{sync}, {shape}"),
            bound.map(|s| s.median),
            format!(
                "{}{}",
                bound.map_or(String::new(), |s| s.show(2)),
                bound_detail.map_or(String::new(), |b| format!(" ({} B batches, bound {:.0} msg/s)", b.batch_bytes, b.bound_messages_per_s))
            ),
            TARGET_SYNC_VS_BOUND,
            false,
            format!("≥ {TARGET_SYNC_VS_BOUND}"),
        ));
        let async_name = format!("async/{backend}");
        let ratio = view.ratio(&sync, &async_name, c);
        rows.push(TargetRow::new(
            "SYNC ÷ ASYNC throughput",
            format!("{backend}, {shape}"),
            ratio,
            ratio.map_or(String::new(), |v| {
                let t = |p: &str| view.throughput(p, c).map_or(0.0, |s| s.median);
                format!("{v:.2} ({:.0} ÷ {:.0} msg/s)", t(&sync), t(&async_name))
            }),
            TARGET_SYNC_VS_ASYNC,
            false,
            format!("≥ {TARGET_SYNC_VS_ASYNC}"),
        ));
        let (idle, ticking) = view.fdatasync_p50_us();
        let limit = idle.min(ticking) + view.rtt_p50_us() + TARGET14_SINGLE_PRODUCER_SLACK_US;
        let p50 = view.point(&sync, 1).map(ProducePoint::p50_us);
        rows.push(TargetRow::new(
            "SYNC send p50, one producer, one send in flight",
            format!("{sync}, 1 × 1"),
            p50,
            p50.map_or(String::new(), |v| format!("{v:.0} µs")),
            limit,
            true,
            format!(
                "≤ {limit:.0} µs (fdatasync p50 {:.0} + RTT {:.0} + {TARGET14_SINGLE_PRODUCER_SLACK_US:.0})",
                idle.min(ticking),
                view.rtt_p50_us()
            ),
        ));
    }
    if let Some(w) = &r.width {
        let name = w.profile.name();
        if let [few, .., many] = w.consume.as_slice() {
            let rate = |x: &crate::suite::WidthConsume| x.summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            let ratio = (rate(few) > 0.0).then(|| rate(many) / rate(few));
            rows.push(TargetRow::new(
                "Width: consume many queues ÷ few (catch-up, same backlog)",
                format!("{name}, {} ÷ {} queues", many.queues, few.queues),
                ratio,
                ratio.map_or(String::new(), |v| format!("{v:.2} ({:.0} ÷ {:.0} records/s)", rate(many), rate(few))),
                TARGET_WIDTH_RATIO,
                false,
                format!("≥ {TARGET_WIDTH_RATIO}"),
            ));
        } else {
            rows.push(TargetRow::new("Width: consume many queues ÷ few (catch-up, same backlog)", name.clone(), None, String::new(), TARGET_WIDTH_RATIO, false, format!("≥ {TARGET_WIDTH_RATIO}")));
        }
        if let [few, .., many] = w.produce.as_slice() {
            let ratio = (few.point.messages_per_s > 0.0).then(|| many.point.messages_per_s / few.point.messages_per_s);
            rows.push(TargetRow::new(
                "Width: produce to many topics ÷ few",
                format!("{name}, {} ÷ {} topics × {} queues, {}", many.topics, few.topics, many.queues_per_topic, many.point.shape()),
                ratio,
                ratio.map_or(String::new(), |v| {
                    format!("{v:.2} ({:.0} ÷ {:.0} msg/s{})", many.point.messages_per_s, few.point.messages_per_s, lag_note(Some(&many.point)))
                }),
                TARGET_WIDTH_RATIO,
                false,
                format!("≥ {TARGET_WIDTH_RATIO}"),
            ));
        } else {
            rows.push(TargetRow::new("Width: produce to many topics ÷ few", name, None, String::new(), TARGET_WIDTH_RATIO, false, format!("≥ {TARGET_WIDTH_RATIO}")));
        }
    } else {
        for target in ["Width: consume many queues ÷ few (catch-up, same backlog)", "Width: produce to many topics ÷ few"] {
            let mut row = TargetRow::new(target, "not run (suite --width)".into(), None, String::new(), TARGET_WIDTH_RATIO, false, format!("≥ {TARGET_WIDTH_RATIO}"));
            row.shown = "—".into();
            rows.push(row);
        }
    }
    for profile in &view.profiles {
        let Some(run) = view.first_run(profile).filter(|run| !run.affinity.is_empty() || run.failures.iter().any(|f| f.starts_with("cross-shard"))) else {
            continue;
        };
        let side = |name: &str| run.affinity.iter().find(|p| p.affinity == name);
        let penalty = view.over_rounds(profile, |run| {
            let owner = run.affinity.iter().find(|p| p.affinity == "owner")?.messages_per_s;
            let cross = run.affinity.iter().find(|p| p.affinity == "cross")?.messages_per_s;
            (owner > 0.0).then(|| 1.0 - cross / owner)
        });
        let shape = side("owner").map_or(String::new(), |p| format!(", {}", p.shape()));
        rows.push(TargetRow::new(
            "Cross-shard penalty: 1 − cross ÷ owner throughput",
            format!("{profile}{shape}"),
            penalty.map(|s| s.median),
            penalty.map_or(String::new(), |s| {
                format!(
                    "{:.0} % (owner {:.0} → cross {:.0} msg/s)",
                    100.0 * s.median,
                    side("owner").map_or(0.0, |p| p.messages_per_s),
                    side("cross").map_or(0.0, |p| p.messages_per_s)
                )
            }),
            TARGET_CROSS_SHARD_PENALTY,
            true,
            format!("≤ {:.0} %", 100.0 * TARGET_CROSS_SHARD_PENALTY),
        ));
    }
    rows
}

/// `; dispatch N MB behind …` when the point ended with a large dispatch backlog (its CPU per
/// message leaves that work out).
fn lag_note(point: Option<&ProducePoint>) -> String {
    point.and_then(|p| p.dispatch_behind_bytes).filter(|b| *b >= DISPATCH_LAG_NOTE_BYTES).map_or(String::new(), |b| {
        format!("; dispatch {:.0} MB behind at the end: acknowledged work left undone", b as f64 / 1_048_576.0)
    })
}

/// The CPU report of an optional point.
fn cpu_of(point: Option<&ProducePoint>) -> Option<&CpuReport> {
    point?.cpu.as_ref()
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

    /// Median and range over rounds of a per-run value.
    fn over_rounds(&self, profile: &str, value: impl Fn(&ProfileRun) -> Option<f64>) -> Option<Spread> {
        Spread::of(self.runs_of(profile).filter_map(value).collect())
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
            .flat_map(|run| run.produce.iter().chain(&run.batch).chain(&run.affinity).map(|p| p.errors))
            .sum::<u64>()
            + r.width.iter().flat_map(|w| w.produce.iter().map(|p| p.point.errors)).sum::<u64>()
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
        let load = |l: Option<[f64; 3]>| l.map_or("?".to_owned(), |[a, b, c]| format!("{a:.2} / {b:.2} / {c:.2}"));
        let _ = writeln!(
            md,
            "Load average (1 / 5 / 15 min): {} at the start, {} at the end — other work on this machine shows there, and in \
             the \"others' CPUs\" column of \"CPU per message\".\n",
            load(r.load_avg.0),
            load(r.load_avg.1)
        );
        let _ = writeln!(
            md,
            "Every point is recorded, not asserted. Compare variants within one run: this machine may be shared and \
             noisy (`--rounds N` repeats the matrix with the profile order rotated; tables then show the median and the range).\n"
        );
        self.probes_section(&mut md);
        self.targets14_section(&mut md);
        self.targets_section(&mut md);
        self.throughput_section(&mut md);
        self.cpu_section(&mut md);
        self.extra_points_section(&mut md);
        self.flush_section(&mut md);
        self.consume_section(&mut md);
        self.width_section(&mut md);
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
        let t = &p.page_cache_touch;
        let _ = writeln!(
            md,
            "Page cache ({} MiB written twice): a buffered write cost {:.2} µs of CPU per 4 KiB page new to the cache and \
             {:.2} µs rewriting a cached one. The commit log is always new pages. On a VM with free page reporting \
             (virtio-balloon) memory freed moments before is cheap to reuse, but memory free for longer went back to the \
             host and every first touch of it traps there (26–60 µs a page on this project's VM, bench/RESULTS.md \
             2026-12-06): which kind a writer gets depends on what the machine freed lately, so this is a lower bound \
             of what the broker's writes pay.\n",
            t.bytes / crate::probe::MIB,
            t.first_write_us_per_page,
            t.rewrite_us_per_page
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
            let _ = write!(md, " {p} msg/s | p50 / p99 µs | CPU µs/msg broker / generator |");
        }
        let _ = write!(md, "\n|---|");
        for _ in &self.profiles {
            let _ = write!(md, "---|---|---|");
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
                        let _ = write!(md, " {} | {:.0} / {:.0} | {} |", s.show(0), point.p50_us(), point.p99_us(), cpu_pair(point.cpu.as_ref()));
                    }
                    _ => {
                        let _ = write!(md, " — | — | — |");
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "\n![latency, lowest concurrency](latency_cdf_single.svg)\n\n![latency, highest concurrency](latency_cdf_max.svg)\n");
        let _ = writeln!(md, "![sync/async](sync_async_ratio.svg)\n\n![epoll/io_uring](backend_ratio.svg)\n");
    }

    fn targets14_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets (issue 14)\n");
        let _ = writeln!(
            md,
            "CPU per message, width and cross-shard work. Broker CPU is the broker process's (every thread, io_uring \
             workers and exited threads included: its process CPU clock) over exactly each measured window, divided by the \
             messages acknowledged (produce) or records consumed (consume) in it; the load generator's is this process's own \
             over the same window. \"÷ limit\" is the measured value divided by the limit.\n"
        );
        let _ = writeln!(md, "| target | where | measured | limit | ÷ limit | met |\n|---|---|---|---|---|---|");
        for row in &self.r.targets_issue14 {
            let verdict = match row.met {
                Some(true) => "**met**",
                Some(false) => "**missed**",
                None => "—",
            };
            let vs = row.vs_limit.map_or("—".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(md, "| {} | {} | {} | {} | {vs} | {verdict} |", row.target, row.place, row.shown, row.limit_shown);
        }
        let _ = writeln!(md);
    }

    fn cpu_section(&self, md: &mut String) {
        let _ = writeln!(md, "## CPU per message\n");
        let _ = writeln!(
            md,
            "Every measured window: broker and load-generator CPU per message (µs), their ratio, the CPUs each kept busy, \
             the whole machine's busy CPUs (`/proc/stat`), what of that neither the broker nor the generator used (the name \
             server, the kernel's own threads, other work on a shared machine) and where the broker's CPU went by thread name \
             (CPUs; `(exited threads)`: threads that ended inside the window).\n"
        );
        let _ = writeln!(md, "![cpu per message](cpu_per_message.svg)\n");
        let _ = writeln!(
            md,
            "| profile | window | msg/s | broker µs/msg | generator µs/msg | broker ÷ generator | broker CPUs | generator CPUs | machine busy CPUs | others' CPUs | broker threads (CPUs) | dispatch behind after, MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for profile in &self.profiles {
            let Some(run) = self.first_run(profile) else { continue };
            let mut windows: Vec<(String, f64, Option<CpuReport>, Option<u64>)> = Vec::new();
            for p in run.produce.iter().chain(&run.affinity).chain(&run.batch) {
                windows.push((point_label(p), p.messages_per_s, p.cpu.clone(), p.dispatch_behind_bytes));
            }
            if let Some(e2e) = &run.e2e {
                let rate = e2e.get("producer").and_then(|p| p.get("messages_per_s")).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                windows.push(("end-to-end 1 × 1 (per message, both sides)".to_owned(), rate, CpuReport::from_summary(e2e), None));
            }
            if let Some(c) = &run.consume {
                let rate = c.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                windows.push(("catch-up consume (per record)".to_owned(), rate, CpuReport::from_summary(c), None));
            }
            for (label, rate, cpu, behind) in windows {
                let _ = writeln!(md, "| {profile} | {label} | {rate:.0} | {} | {} |", cpu_cells(cpu.as_ref()), mib(behind));
            }
        }
        if let Some(w) = &self.r.width {
            let profile = w.profile.name();
            for c in &w.consume {
                let rate = c.summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                let _ = writeln!(md, "| {profile} | width: catch-up over {} queues (per record) | {rate:.0} | {} | — |", c.queues, cpu_cells(CpuReport::from_summary(&c.summary).as_ref()));
            }
            for p in &w.produce {
                let _ = writeln!(
                    md,
                    "| {profile} | width: {} topics × {} queues, {} | {:.0} | {} | {} |",
                    p.topics,
                    p.queues_per_topic,
                    p.point.shape(),
                    p.point.messages_per_s,
                    cpu_cells(p.point.cpu.as_ref()),
                    mib(p.point.dispatch_behind_bytes)
                );
            }
        }
        let _ = writeln!(md);
    }

    fn extra_points_section(&self, md: &mut String) {
        let runs: Vec<&ProfileRun> = self.profiles.iter().filter_map(|p| self.first_run(p)).filter(|r| r.batch.is_some() || !r.affinity.is_empty()).collect();
        if runs.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Batches and cross-shard sends\n");
        let _ = writeln!(
            md,
            "Batch: SEND_BATCH_MESSAGE of N messages per send (own topic; latency per batch). Cross-shard: each connection \
             first finds which shard serves it, then sends only to queues that shard owns (owner) or only to queues another \
             shard owns (cross: every send hops to the owner shard and back).\n"
        );
        let _ = writeln!(md, "| profile | point | shard split | msg/s | p50 / p99 µs | CPU µs/msg broker / generator |\n|---|---|---|---|---|---|");
        for run in runs {
            for p in run.batch.iter().chain(&run.affinity) {
                let split = if p.shard_split.is_empty() { "—".to_owned() } else { format!("{:?}", p.shard_split) };
                let _ = writeln!(
                    md,
                    "| {} | {} | {split} | {:.0} | {:.0} / {:.0} | {} |",
                    run.profile.name(),
                    point_label(p),
                    p.messages_per_s,
                    p.p50_us(),
                    p.p99_us(),
                    cpu_pair(p.cpu.as_ref())
                );
            }
        }
        let _ = writeln!(md);
    }

    fn width_section(&self, md: &mut String) {
        let Some(w) = &self.r.width else { return };
        let _ = writeln!(md, "## Width: many queues, many topics\n");
        let _ = writeln!(
            md,
            "{} on fresh brokers. Consume: the same backlog written to a topic of few and of many queues (batches, not \
             measured), then read back by one connection with one 32-record pull in flight per queue, the two alternating \
             (`--width-reads`; the row shows the median read). Produce: the topics \
             exist before the broker starts (`--width-setup`), one send to every queue touches it first (not measured), then \
             closed-loop sends go round robin over every (topic, queue).\n",
            w.profile.name()
        );
        if !w.consume.is_empty() {
            let _ = writeln!(
                md,
                "| queues | backlog | records/s, median read (all reads) | wire MiB/s | pull p50 / p99 µs | CPU µs/record broker / consumer | fill s |\n|---|---|---|---|---|---|---|"
            );
            for c in &w.consume {
                let f = |k: &str| c.summary.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                let pull = |k: &str| c.summary.get("pull_latency_us").and_then(|p| p.get(k)).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} ({}) | {:.0} | {:.0} / {:.0} | {} | {:.1} |",
                    c.queues,
                    f("backlog"),
                    f("messages_per_s"),
                    c.rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
                    f("wire_mib_per_s"),
                    pull("p50"),
                    pull("p99"),
                    cpu_pair(CpuReport::from_summary(&c.summary).as_ref()),
                    c.fill_s
                );
            }
            let _ = writeln!(md);
        }
        if !w.produce.is_empty() {
            let _ = writeln!(
                md,
                "| topics × queues | point | msg/s | p50 / p99 µs | CPU µs/msg broker / generator | setup s ({}) | touch every queue s | then dispatched in s (MB left) | dispatch behind after the window, MB | broker open files |\n|---|---|---|---|---|---|---|---|---|---|",
                w.produce.first().map_or("", |p| p.setup.as_str())
            );
            for p in &w.produce {
                let _ = writeln!(
                    md,
                    "| {} × {} | {} | {:.0} | {:.0} / {:.0} | {} | {:.1} | {:.1} | {:.1} ({}) | {} | {} |",
                    p.topics,
                    p.queues_per_topic,
                    p.point.shape(),
                    p.point.messages_per_s,
                    p.point.p50_us(),
                    p.point.p99_us(),
                    cpu_pair(p.point.cpu.as_ref()),
                    p.setup_s,
                    p.touch_s,
                    p.dispatch_wait_s,
                    mib(p.dispatch_behind_before_bytes),
                    mib(p.point.dispatch_behind_bytes),
                    p.broker_open_files.map_or("?".to_owned(), |n| n.to_string())
                );
            }
            let _ = writeln!(md);
        }
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
            "| profile | catch-up msg/s | wire MiB/s | ÷ sendfile | msgs per pull | pull p50 / p99 µs | CPU µs/record broker / consumer | e2e p50 / p99 / p99.9 µs | e2e CPU µs/msg broker / generator |\n|---|---|---|---|---|---|---|---|---|"
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
                "| {profile} | {:.0} | {wire:.0} | {:.2} | {:.1} | {:.0} / {:.0} | {} | {:.0} / {:.0} / {:.0} | {} |",
                f(c, "messages_per_s"),
                if sendfile > 0.0 { wire / sendfile } else { 0.0 },
                f(c, "mean_messages_per_pull"),
                f(pull, "p50"),
                f(pull, "p99"),
                cpu_pair(c.and_then(CpuReport::from_summary).as_ref()),
                f(e2e, "p50"),
                f(e2e, "p99"),
                f(e2e, "p99_9"),
                cpu_pair(run.e2e.as_ref().and_then(CpuReport::from_summary).as_ref())
            );
        }
        let _ = writeln!(md);
    }

    fn errors_section(&self, md: &mut String) {
        let mut lines = Vec::new();
        let mut warnings = Vec::new();
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
            for p in run.batch.iter().chain(&run.affinity).filter(|p| p.errors > 0) {
                lines.push(format!("- {} round {}, {}: {} failed sends: {}", run.profile.name(), run.round + 1, point_label(p), p.errors, p.codes));
            }
            for failure in &run.failures {
                lines.push(format!("- {} round {}: {failure}", run.profile.name(), run.round + 1));
            }
        }
        if let Some(w) = &self.r.width {
            for p in w.produce.iter().filter(|p| p.point.errors > 0) {
                lines.push(format!("- width, {} topics: {} failed sends: {}", p.topics, p.point.errors, p.point.codes));
            }
            for c in &w.consume {
                if let Some(gaps) = c.summary.get("gaps").and_then(serde_json::Value::as_u64).filter(|g| *g > 0) {
                    lines.push(format!("- width, {} queues: consume saw {gaps} offset gaps", c.queues));
                }
            }
            for failure in &w.failures {
                lines.push(format!("- width: {failure}"));
            }
        }
        for log in &self.r.log_problems {
            let what = if log.errors > 0 { "ERROR" } else { "WARN" };
            let first = log.first.iter().map(|l| format!("`{}`", l.replace('`', "'"))).collect::<Vec<_>>().join("; ");
            let line = format!("- logs/{}: {} ERROR and {} WARN lines, first: {first}", log.file, log.errors, log.warnings);
            if what == "ERROR" {
                lines.push(line);
            } else {
                warnings.push(line);
            }
        }
        let _ = writeln!(md, "## Errors and fallbacks\n");
        if lines.is_empty() {
            let _ = writeln!(
                md,
                "None: every send was answered SUCCESS, every profile ran on the backend it named, no consume gaps, every measurement ran, no server logged an ERROR.\n"
            );
        } else {
            let _ = writeln!(md, "{}\n", lines.join("\n"));
        }
        if !warnings.is_empty() {
            let _ = writeln!(md, "Warnings in the server logs:\n\n{}\n", warnings.join("\n"));
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

    /// Broker and generator CPU µs per acknowledged send against sends in flight (log scale).
    fn cpu_plot(&self) -> Result<String, String> {
        let mut series = Vec::new();
        for (side, broker) in [("broker", true), ("generator", false)] {
            for p in &self.profiles {
                let points = self
                    .concurrency
                    .iter()
                    .filter_map(|&c| {
                        let cpu = self.point(p, c)?.cpu.as_ref()?;
                        let us = if broker { cpu.broker_us_per_message } else { cpu.generator_us_per_message }?;
                        (us > 0.0).then(|| (log2(c), us.log10()))
                    })
                    .collect::<Vec<_>>();
                if !points.is_empty() {
                    series.push(Series { name: format!("{p} {side}"), points });
                }
            }
        }
        line_chart(&Chart {
            title: "CPU per acknowledged send (µs)",
            x_desc: "sends in flight (all connections)",
            y_desc: "µs of CPU per message",
            series,
            x_axis: Axis::Log2,
            y_axis: Axis::Log10,
            y_from_zero: false,
            target: Some(TARGET_BROKER_US_PER_SEND.log10()),
            legend: SeriesLabelPosition::UpperRight,
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

/// Bytes as MiB with one decimal (`—` when unknown).
fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("—".to_owned(), |b| format!("{:.1}", b as f64 / 1_048_576.0))
}

/// `broker / generator` µs per message (`— / g` without a broker PID, `—` without a window).
fn cpu_pair(cpu: Option<&CpuReport>) -> String {
    let Some(cpu) = cpu else { return "—".to_owned() };
    let us = |v: Option<f64>| v.map_or("—".to_owned(), |v| if v < 10.0 { format!("{v:.2}") } else { format!("{v:.1}") });
    format!("{} / {}", us(cpu.broker_us_per_message), us(cpu.generator_us_per_message))
}

/// The CPU cells of the "CPU per message" table (from "broker µs/msg" on).
fn cpu_cells(cpu: Option<&CpuReport>) -> String {
    let Some(cpu) = cpu else { return "— | — | — | — | — | — | — | —".to_owned() };
    let f = |v: Option<f64>, d: usize| v.map_or("—".to_owned(), |v| format!("{v:.d$}"));
    let mut threads: Vec<(&String, &f64)> = cpu.broker_threads_cpu_s.iter().filter(|(_, s)| **s > 0.0).collect();
    threads.sort_by(|a, b| b.1.total_cmp(a.1));
    let window = cpu.window_s.max(1e-9);
    let threads: Vec<String> = threads.iter().take(5).map(|(name, s)| format!("{name} {:.2}", **s / window)).collect();
    format!(
        "{} | {} | {} | {} | {:.2} | {} | {} | {}",
        f(cpu.broker_us_per_message, 2),
        f(cpu.generator_us_per_message, 2),
        f(cpu.broker_per_generator, 2),
        f(cpu.broker_cpus(), 2),
        cpu.generator_cpus(),
        f(cpu.machine_busy_cpus, 2),
        f(cpu.other_cpus(), 2),
        if threads.is_empty() { "—".to_owned() } else { threads.join(", ") }
    )
}

/// `4 × 64`, with the batch size, topics and affinity where they are not the default.
fn point_label(p: &ProducePoint) -> String {
    let mut label = p.shape();
    if p.batch > 1 {
        label = format!("batches of {}, {label}", p.batch);
    }
    if p.topics > 1 {
        label = format!("{} topics, {label}", p.topics);
    }
    if p.affinity != "any" {
        label = format!("{}, {label}", p.affinity);
    }
    label
}

/// Median and range of a set of samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub(crate) fn of(mut samples: Vec<f64>) -> Option<Spread> {
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
    pub(crate) fn show(&self, decimals: usize) -> String {
        if self.n == 1 {
            format!("{:.*}", decimals, self.median)
        } else {
            format!("{:.*} ({:.*}–{:.*})", decimals, self.median, decimals, self.min, decimals, self.max)
        }
    }
}

/// `median (min–max)` of `values`, or the one value when they are all the same; `—` without any.
pub(crate) fn spread(values: &[f64], decimals: usize) -> String {
    match Spread::of(values.to_vec()) {
        None => "—".to_owned(),
        Some(s) if s.min == s.max => format!("{:.*}", decimals, s.median),
        Some(s) => s.show(decimals),
    }
}

/// `v` with `decimals`, or `—` when it is absent or not finite.
pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.filter(|v| v.is_finite()).map_or("—".to_owned(), |v| format!("{v:.decimals$}"))
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
                if x >= 1_000.0 {
                    format!("{:.0}k", x / 1_000.0)
                } else if x >= 10.0 {
                    format!("{x:.0}")
                } else {
                    trim_zeros(&format!("{x:.2}"))
                }
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

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

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
                .label(format!("target {}", if chart.y_axis == Axis::Log10 { chart.y_axis.label(t) } else { t.to_string() }))
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
    fn target_rows_judge_both_directions_and_unmeasured_values() {
        let at_most = TargetRow::new("cpu", "here".into(), Some(26.5), "26.5 µs".into(), 5.0, true, "≤ 5 µs".into());
        assert_eq!((at_most.met, at_most.vs_limit), (Some(false), Some(5.3)));
        let met = TargetRow::new("cpu", "here".into(), Some(5.0), "5 µs".into(), 5.0, true, "≤ 5 µs".into());
        assert_eq!(met.met, Some(true));
        let at_least = TargetRow::new("ratio", "here".into(), Some(0.9), "0.90".into(), 0.8, false, "≥ 0.8".into());
        assert_eq!(at_least.met, Some(true));
        let below = TargetRow::new("ratio", "here".into(), Some(0.7), "0.70".into(), 0.8, false, "≥ 0.8".into());
        assert_eq!(below.met, Some(false));
        for unmeasured in [None, Some(f64::NAN), Some(f64::INFINITY)] {
            let row = TargetRow::new("x", "here".into(), unmeasured, "?".into(), 1.0, true, "≤ 1".into());
            assert_eq!((row.met, row.vs_limit, row.shown.as_str()), (None, None, "not measured"));
        }
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
