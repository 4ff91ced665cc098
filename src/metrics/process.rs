//! The process figures every component exports (Prometheus's standard
//! `process_*` names) and `orderly_build_info`, read from `/proc/self` on
//! each scrape. Elsewhere than Linux the process figures are left out.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// The version and commit `orderly_build_info` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built (`unknown` when the build could not tell).
pub const COMMIT: &str = env!("ORDERLY_COMMIT");

/// Jiffies per second in `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 in the
/// kernel's ABI on every architecture Linux exports it for.
const USER_HZ: f64 = 100.0;

/// Reads the `process_*` families and `orderly_build_info` on each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let info = [("version", VERSION), ("commit", COMMIT)];
        let labels = info.map(|(k, v)| (k, super::escape_label_value(v)));
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut family = encoder.encode_descriptor(
            "orderly_build_info",
            "The version and commit of this build; always 1",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;

        let figures = Figures::read();
        if let Some(cpu) = figures.cpu_seconds {
            let family = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(family)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                figures.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                figures.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                figures.open_fds,
            ),
            (
                "process_max_fds",
                "The limit on open file descriptors",
                figures.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                figures.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(family)?;
            }
        }
        Ok(())
    }
}

/// One reading of `/proc/self`; a figure that cannot be read is `None`.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    /// utime + stime.
    pub cpu_seconds: Option<f64>,
    /// VmRSS.
    pub resident_bytes: Option<f64>,
    /// VmSize.
    pub virtual_bytes: Option<f64>,
    /// Entries of /proc/self/fd.
    pub open_fds: Option<f64>,
    /// The soft limit of "Max open files".
    pub max_fds: Option<f64>,
    /// Boot time plus the process's start, in seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

impl Figures {
    /// Reads the current figures.
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let stat = read("/proc/self/stat");
        let stat = stat.as_deref().map(stat_fields);
        let field = |i: usize| -> Option<f64> { stat.as_ref()?.get(i)?.parse().ok() };
        let status = read("/proc/self/status").unwrap_or_default();
        let boot_time = read("/proc/stat").and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|t| t.trim().parse::<f64>().ok())
        });
        Self {
            // Fields 14 and 15 (utime, stime) of proc(5), counted from 1.
            cpu_seconds: field(13)
                .zip(field(14))
                .map(|(user, system)| (user + system) / USER_HZ),
            resident_bytes: kib(&status, "VmRSS:"),
            virtual_bytes: kib(&status, "VmSize:"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as f64),
            max_fds: read("/proc/self/limits").and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("Max open files"))?;
                line["Max open files".len()..]
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            }),
            // Field 22 (starttime), in jiffies since boot.
            start_time_seconds: boot_time
                .zip(field(21))
                .map(|(boot, start)| boot + start / USER_HZ),
        }
    }
}

/// The fields of `/proc/<pid>/stat`, the command name kept whole: it sits
/// in parentheses and may itself hold spaces or parentheses.
fn stat_fields(stat: &str) -> Vec<&str> {
    let Some(close) = stat.rfind(')') else {
        return Vec::new();
    };
    let (head, tail) = stat.split_at(close + 1);
    let mut fields: Vec<&str> = head.splitn(2, ' ').collect();
    fields.extend(tail.split_whitespace());
    fields
}

/// A `Name:   123 kB` line of `/proc/self/status`, in bytes.
fn kib(status: &str, name: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: f64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_keep_an_odd_command_name_whole() {
        let stat =
            "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1234 1000 300";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "42");
        assert_eq!(fields[1], "(a b) c))");
        assert_eq!(fields[2], "S");
        assert_eq!(fields[13], "250");
        assert_eq!(fields[14], "50");
        assert_eq!(fields[21], "1234");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn figures_are_read_on_linux() {
        let figures = Figures::read();
        assert!(figures.cpu_seconds.is_some_and(|c| c >= 0.0), "{figures:?}");
        assert!(
            figures.resident_bytes.is_some_and(|r| r > 0.0),
            "{figures:?}"
        );
        assert!(figures.open_fds.is_some_and(|n| n >= 3.0), "{figures:?}");
        assert!(figures.max_fds.is_some_and(|n| n > 0.0), "{figures:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = figures.start_time_seconds.expect("a start time");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started} vs {now}"
        );
    }
}
