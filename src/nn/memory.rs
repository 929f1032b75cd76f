//! The heap policy while on-device models run. tract allocates every intermediate tensor afresh on each run (the
//! Piper decoder's are 8–16 MB each for a few hundred frames, YuNet's several MB), and with glibc's defaults each
//! is either mapped, faulted in page by page and unmapped again, or carved from a heap whose top is trimmed back
//! to the kernel after the run and faulted in again on the next: 15 % of a sentence's synthesis, and a third of
//! building its plan (docs/BENCHMARKS.md). So while models are in use ([`keep_working_sets`], called by each
//! model's loader), glibc keeps what is freed: blocks up to [`MMAP_THRESHOLD`] come from the heap and freeing
//! trims nothing below [`TRIM_THRESHOLD`]. A background thread gives it all back (`malloc_trim`) once no model has
//! run ([`in_use`]) for [`IDLE_BEFORE_TRIM`], so an idle box is as small as before; a busy one keeps its largest
//! recent working set (tens to a few hundred MB for a long sentence) until it falls idle.
//!
//! glibc only; elsewhere both calls do nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// Blocks up to this size are served from the heap rather than mapped one by one.
pub const MMAP_THRESHOLD: usize = 256 << 20;
/// Free memory at the heap's top is only handed back on free beyond this.
pub const TRIM_THRESHOLD: usize = 1 << 30;
/// How long no model must have run before the kept memory is handed back.
pub const IDLE_BEFORE_TRIM: Duration = Duration::from_secs(20);
/// How often the trimmer looks.
const POLL: Duration = Duration::from_secs(5);

/// Milliseconds since [`start`] at the last [`in_use`], plus one (zero: never).
static LAST_USE: AtomicU64 = AtomicU64::new(0);
static START: OnceLock<Instant> = OnceLock::new();
static KEEP: Once = Once::new();

fn start() -> Instant {
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    start().elapsed().as_millis() as u64 + 1
}

/// Notes that a model runs now (cheap: one atomic store). The trimmer waits for [`IDLE_BEFORE_TRIM`] after it.
pub fn in_use() {
    LAST_USE.store(now_ms(), Ordering::Relaxed);
}

/// Sets the heap policy and starts the trimmer, once per process. Every call also counts as a use, so what a
/// model's loading freed is handed back once the box has been idle after it, even if the model never runs.
pub fn keep_working_sets() {
    in_use();
    KEEP.call_once(|| {
        if !set_thresholds() {
            tracing::warn!("memory: glibc refused the thresholds; models run with its defaults");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("heap-trimmer".into())
            .spawn(|| {
                let mut trimmed_after = 0;
                loop {
                    std::thread::sleep(POLL);
                    let last = LAST_USE.load(Ordering::Relaxed);
                    if let Some(last) = due(last, now_ms(), trimmed_after) {
                        release_freed_memory();
                        trimmed_after = last;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "memory: no trimmer thread ({e}); freed model memory stays with the process"
            );
        }
    });
}

/// The use to trim after when the heap is due a trim at `now` (both in [`now_ms`] units): a use has happened, it
/// is [`IDLE_BEFORE_TRIM`] old, and the heap has not been trimmed since it.
fn due(last_use: u64, now: u64, trimmed_after: u64) -> Option<u64> {
    let idle = IDLE_BEFORE_TRIM.as_millis() as u64;
    (last_use != 0 && last_use != trimmed_after && now.saturating_sub(last_use) >= idle)
        .then_some(last_use)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // SAFETY: mallopt only changes glibc's allocation parameters; it is safe to call at any time from any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

/// Hands every free page of glibc's heaps back to the kernel.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's heaps to the kernel; it touches no allocation in use
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_trimmed_once_after_each_idle_spell() {
        let idle = IDLE_BEFORE_TRIM.as_millis() as u64;
        // Never used: nothing to give back.
        assert_eq!(due(0, 10 * idle, 0), None);
        // Used, but not long ago.
        assert_eq!(due(1_000, 1_000 + idle - 1, 0), None);
        // Idle long enough: trim, once.
        assert_eq!(due(1_000, 1_000 + idle, 0), Some(1_000));
        assert_eq!(due(1_000, 1_000 + 5 * idle, 1_000), None);
        // Used again since: trim again once that use is old enough.
        assert_eq!(due(9_000, 9_000 + idle / 2, 1_000), None);
        assert_eq!(due(9_000, 9_000 + idle, 1_000), Some(9_000));
    }

    #[test]
    fn the_policy_is_set_once_and_use_is_noted() {
        let before = now_ms();
        keep_working_sets();
        keep_working_sets();
        // A load counts as a use: the trimmer gives back what it freed once idle.
        assert!(LAST_USE.load(Ordering::Relaxed) >= before);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(set_thresholds(), "glibc takes the thresholds");
        let before = now_ms();
        in_use();
        assert!(LAST_USE.load(Ordering::Relaxed) >= before);
    }
}
