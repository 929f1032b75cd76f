//! Which vector width Jarvis's own model kernels use (`vision::depthwise`, `vision::pointwise`,
//! `voice::tts::conv1d`): AVX-512 when the CPU has it, unless it has been turned off for this process with
//! [`limit_to_avx2`]. That switch is for measuring: the faces benchmark runs its speed table a second time
//! without AVX-512, so that an owner of a box without it (an Intel N100, most mini PCs) sees what that box would
//! get. tract's own kernels are not affected: they choose for themselves.

use std::sync::atomic::{AtomicBool, Ordering};

static AVX512_OFF: AtomicBool = AtomicBool::new(false);

/// Whether the kernels may use AVX-512F: the CPU has it (checked at run time) and it is not turned off.
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !AVX512_OFF.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Turns AVX-512 off (`true`) or back on for every kernel that runs after this call in this process. (Not
/// toggled in unit tests: tests that run at the same time compare results bit for bit, and the two widths round
/// differently. The kernels of each width are tested directly where they are defined.)
pub fn limit_to_avx2(limit: bool) {
    AVX512_OFF.store(limit, Ordering::Relaxed);
}
