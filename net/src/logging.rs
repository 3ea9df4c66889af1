//! Process-wide logging set-up shared by the binaries: human-readable lines on stderr, level
//! from `FERROMQ_LOG` (or `RUST_LOG`): `error | warn | info | debug | trace`, default `info`.

use tracing::level_filters::LevelFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let level = ["FERROMQ_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|text| text.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // Colours only for a person at a terminal: logs captured to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
