//! CPUs and pinning: which cores this process may run on, and pinning a
//! thread (with everything it starts) to some of them.

/// The CPUs this thread may run on (its affinity mask, inherited from the
/// process: a cpuset, a `taskset`), in order. Shards are pinned to these,
/// never to others.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is `set`'s own, and `set` is a live local.
    let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if got == 0 {
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE, inside `set`.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        if !cpus.is_empty() {
            return cpus;
        }
    }
    let n = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    (0..n).collect()
}

/// Run this thread, and every thread or process it starts from now on, on
/// `cpus` only.
pub fn pin_self(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; `set` outlives the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `c` is below CPU_SETSIZE, inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the size passed is `set`'s own, and `set` outlives the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{allowed_cpus, pin_self};

    #[test]
    fn shards_are_pinned_only_to_cpus_the_process_may_use() {
        let all = allowed_cpus();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        // In a thread of its own: the mask is per thread and inherited.
        let seen = std::thread::spawn(move || {
            pin_self(&[last]).unwrap();
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen, [last]);
    }
}
