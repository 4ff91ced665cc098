//! CPU time and memory of a process, read from `/proc` (Linux).

use std::time::Duration;

/// The kernel's clock ticks per second in `/proc/<pid>/stat` (USER_HZ). It
/// is 100 on every Linux architecture the project runs on; reading it with
/// sysconf would need libc and `unsafe`.
const TICKS_PER_SECOND: u64 = 100;

/// What one process (or a process tree) has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident memory now, in bytes.
    pub rss_bytes: u64,
    /// The highest resident memory so far (VmHWM), in bytes; for a tree,
    /// the sum of each process's peak.
    pub peak_rss_bytes: u64,
}

impl ProcessStats {
    /// The figures of process `pid`, or `None` when it is gone.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, ticks) = parse_stat(&stat)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(Self {
            cpu: Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND),
            rss_bytes: status_kib(&status, "VmRSS:") * 1024,
            peak_rss_bytes: status_kib(&status, "VmHWM:") * 1024,
        })
    }

    /// The figures of `pid` and all its descendants added up (a Postgres
    /// server's postmaster and its backends). Children that already exited
    /// are not counted.
    pub fn of_tree(pid: u32) -> Option<Self> {
        let mut total = Self::of(pid)?;
        let mut parents = vec![pid];
        let all = processes_with_parents();
        while let Some(parent) = parents.pop() {
            for (child, _) in all.iter().filter(|(_, p)| *p == parent) {
                if let Some(stats) = Self::of(*child) {
                    total.cpu += stats.cpu;
                    total.rss_bytes += stats.rss_bytes;
                    total.peak_rss_bytes += stats.peak_rss_bytes;
                }
                parents.push(*child);
            }
        }
        Some(total)
    }
}

/// (parent pid, utime + stime ticks) from a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Every process with its parent.
fn processes_with_parents() -> Vec<(u32, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parse_stat(&stat)?.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_an_odd_name_parses() {
        let line = "42 (my (odd) name) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some((7, 300)));
    }

    #[test]
    fn this_process_has_figures() {
        let stats = ProcessStats::of(std::process::id()).expect("own stats");
        assert!(stats.peak_rss_bytes >= stats.rss_bytes && stats.rss_bytes > 0);
    }
}
