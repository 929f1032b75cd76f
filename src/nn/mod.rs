//! What Jarvis adds to tract for its on-device networks and that more than one subsystem uses: the rewriting of a
//! decluttered model's chains of nodes into one op ([`fusion`]), the heap policy while models run
//! ([`memory`]), and the vector width their own kernels use ([`simd`]). The ops themselves live with the models they serve (`vision::depthwise`, `vision::pointwise`,
//! `voice::tts::conv1d`).

pub mod fusion;
pub mod memory;
pub mod simd;
