//! The server's CPU time and resident memory, read from `/proc/PID`.

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// utime + stime, in clock ticks.
    pub(super) cpu_ticks: u64,
    /// VmRSS, in KiB.
    pub(super) rss_kib: u64,
}

impl Sample {
    /// CPU seconds spent between `self` and a later sample.
    pub(super) fn cpu_seconds_until(&self, later: &Sample) -> f64 {
        later.cpu_ticks.saturating_sub(self.cpu_ticks) as f64 / clock_ticks_per_second() as f64
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`: the unit of utime and stime),
/// from the process's auxiliary vector.
pub(super) fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// Reads `/proc/PID/stat` (utime, stime) and `/proc/PID/status` (VmRSS).
pub(super) fn sample(pid: u32) -> Result<Sample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'. Field 3 (state) is then index 0, so utime (14) and stime (15) are 11 and 12.
    let rest = stat
        .rfind(')')
        .and_then(|at| stat.get(at + 1..))
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |index: usize| -> Result<u64, String> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))
    };
    let cpu_ticks = field(11)? + field(12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no VmRSS line"))?;
    Ok(Sample { cpu_ticks, rss_kib })
}
