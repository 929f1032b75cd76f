//! One-dimensional convolutions (stride 1, one group, f32) as [`Conv1d`], put in place of tract's `Conv` in the
//! Piper decoder by [`rewrite`], with the LeakyReLU before (applied as the input is copied, so even one that other
//! nodes read too) and the residual `Add` after (when nothing else reads the convolution) folded in: HiFi-GAN's
//! residual blocks are `x + conv(leaky(x))`, three of them on each upsampled signal, over 30,000–120,000 samples at
//! 32–128 channels, half of the decoder's time. tract runs these as a lazy im2col feeding a matrix product, or, for a
//! few input taps, its direct convolution (AVX2 only, four output channels at a time), and the LeakyReLU and the
//! `Add` as passes of their own over the whole signal.
//!
//! Here the signal is cut into tiles of a few hundred outputs. Each tile's input rows (with the padding as zeros and
//! the LeakyReLU applied) are copied once into a scratch block whose rows are an odd number of cache lines apart, so
//! a tap at dilation `d` is just the row read `k·d` further on. Each output block (four channels × 24 samples for
//! AVX2 and FMA, × 64 for AVX-512, chosen at run time; a plain loop otherwise) is accumulated in registers over
//! every input channel and tap, then stored once with the bias and the residual added. The sums are the same
//! products added in another order, so results agree with tract's to rounding (tests compare both).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::nn::{DataFormat, LeakyRelu};

use crate::nn::fusion::{only_successor, other_input, replace_chains_reading};

/// Output channels per register block.
const BLOCK_CHANNELS: usize = 4;
/// About how many input values one tile's scratch block holds (64 KiB: it stays in the L2 cache while every output
/// block of the tile reads it).
const TILE_VALUES: usize = 16 * 1024;
/// Floats per cache line.
const LINE: usize = 16;

/// `y[o, t] = bias[o] + Σ_i Σ_k w[o, i, k]·x'[i, t + k·dilation − pad_before]`, with `x' = leaky(x)` when `leak` is
/// set and zero outside the signal; then `y += x` when `residual`. Input `[N, I, L]`, output `[N, O, L']` with
/// `L' = L + pad_before + pad_after − dilation·(K − 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1d {
    /// The weights by groups of four output channels, `[⌈O/4⌉, I, K, 4]`, zeros after the last real channel.
    packed: Arc<Tensor>,
    /// `[⌈O/4⌉·4]`, zeros after the last real channel.
    bias: Arc<Tensor>,
    inputs: usize,
    outputs: usize,
    taps: usize,
    dilation: usize,
    pad: (usize, usize),
    /// The slope of a LeakyReLU applied to the input first.
    leak: Option<f32>,
    /// The input added to the output (a residual connection: as many outputs as inputs, the same length).
    residual: bool,
}

// The one float (`leak`) is a model constant, never NaN.
impl Eq for Conv1d {}

impl Conv1d {
    /// The op for `weights` `[O, I, K]` and `bias` (`[O]`, or one value for all), or `None` when they disagree.
    pub fn new(
        weights: &Tensor,
        bias: &Tensor,
        dilation: usize,
        pad: (usize, usize),
    ) -> TractResult<Option<Conv1d>> {
        let &[outputs, inputs, taps] = weights.shape() else {
            return Ok(None);
        };
        if weights.datum_type() != f32::datum_type()
            || bias.datum_type() != f32::datum_type()
            || dilation == 0
            || outputs * inputs * taps == 0
        {
            return Ok(None);
        }
        let w_view = weights.try_as_plain_ram()?;
        let w = w_view.as_slice::<f32>()?;
        let b_view = bias.try_as_plain_ram()?;
        let b = b_view.as_slice::<f32>()?;
        let groups = outputs.div_ceil(BLOCK_CHANNELS);
        let mut packed = vec![0.0f32; groups * inputs * taps * BLOCK_CHANNELS];
        let mut padded_bias = vec![0.0f32; groups * BLOCK_CHANNELS];
        for o in 0..outputs {
            let (g, j) = (o / BLOCK_CHANNELS, o % BLOCK_CHANNELS);
            for i in 0..inputs {
                for k in 0..taps {
                    packed[((g * inputs + i) * taps + k) * BLOCK_CHANNELS + j] =
                        w[(o * inputs + i) * taps + k];
                }
            }
            padded_bias[o] = match b.len() {
                1 => b[0],
                n if n == outputs => b[o],
                _ => return Ok(None),
            };
        }
        Ok(Some(Conv1d {
            packed: Arc::new(tensor1(&packed)),
            bias: Arc::new(tensor1(&padded_bias)),
            inputs,
            outputs,
            taps,
            dilation,
            pad,
            leak: None,
            residual: false,
        }))
    }

    /// Input values beyond a tile's outputs that its taps read.
    fn halo(&self) -> usize {
        self.dilation * (self.taps - 1)
    }

    /// The output length for an input of `len` samples, or `None` when the taps do not fit.
    fn output_len(&self, len: usize) -> Option<usize> {
        (len + self.pad.0 + self.pad.1).checked_sub(self.halo())
    }

    /// Outputs per tile for blocks of `block` samples: a whole number of blocks, the scratch about
    /// [`TILE_VALUES`].
    fn tile_outputs(&self, block: usize) -> usize {
        ((TILE_VALUES / self.inputs) / block).max(1) * block
    }

    /// The scratch row length for tiles of `tile` outputs read in blocks of `block`: room for the last block's
    /// overrun and the halo, rounded to an odd number of cache lines so rows fall in different cache sets.
    fn scratch_stride(&self, tile: usize, block: usize) -> usize {
        let lines = (tile + block + self.halo()).div_ceil(LINE);
        (lines | 1) * LINE
    }

    /// Copies the input rows of the tile of outputs from `t0` into `scratch` (rows `stride` apart): sample
    /// `t0 − pad_before + j` at `j`, zero outside the signal, the LeakyReLU applied.
    fn fill_tile(&self, x: &[f32], len: usize, t0: usize, scratch: &mut [f32], stride: usize) {
        // Scratch positions [start, end) hold signal samples; the rest are zeros.
        let start = self.pad.0.saturating_sub(t0).min(stride);
        let first = (t0 + start).saturating_sub(self.pad.0);
        let end = (start + len.saturating_sub(first)).min(stride);
        for (i, row) in scratch.chunks_exact_mut(stride).enumerate() {
            row[..start].fill(0.0);
            row[end..].fill(0.0);
            if end == start {
                continue;
            }
            let source = &x[i * len + first..i * len + first + (end - start)];
            let target = &mut row[start..end];
            match self.leak {
                Some(slope) => {
                    for (t, &v) in target.iter_mut().zip(source) {
                        *t = if v < 0.0 { v * slope } else { v };
                    }
                }
                None => target.copy_from_slice(source),
            }
        }
    }

    /// One batch item by `kernel`: `x` is `[I, len]`, `out` `[O, out_len]`.
    fn run(
        &self,
        kernel: &Kernel,
        x: &[f32],
        len: usize,
        out: &mut [f32],
        out_len: usize,
    ) -> TractResult<()> {
        ensure!(x.len() == self.inputs * len && out.len() == self.outputs * out_len);
        ensure!(!self.residual || (self.inputs == self.outputs && len == out_len));
        let p_view = self.packed.try_as_plain_ram()?;
        let packed = p_view.as_slice::<f32>()?;
        let b_view = self.bias.try_as_plain_ram()?;
        let bias = b_view.as_slice::<f32>()?;
        let block = kernel.block;
        let tile = self.tile_outputs(block);
        let stride = self.scratch_stride(tile, block);
        let mut scratch = vec![0.0f32; self.inputs * stride];
        let residual = self.residual.then_some(x);
        let mut t0 = 0;
        while t0 < out_len {
            let count = tile.min(out_len - t0);
            self.fill_tile(x, len, t0, &mut scratch, stride);
            let tile = Tile {
                scratch: &scratch,
                stride,
                t0,
                count,
            };
            // SAFETY: the kernel runs on this CPU (`fastest_kernel` and the tests check its features); the scratch
            // holds `inputs` rows of `stride ≥ count rounded up to a block + halo` values, `packed` and `bias` have
            // the op's shapes, `out` holds `outputs` rows of `out_len`, and the residual (when set) `inputs =
            // outputs` rows of `len = out_len` (checked above).
            unsafe { (kernel.run)(self, &tile, packed, bias, residual, out, out_len) };
            t0 += count;
        }
        Ok(())
    }

    /// Computes `out_len` outputs of one batch item `x` (`[I, len]`) tile by tile, each tile's `[O, count]` block
    /// handed to `sink` with its first output, instead of stored in one output tensor (no residual). For ops built
    /// on this one ([`super::deconv1d`]).
    pub(super) fn run_tiles(
        &self,
        x: &[f32],
        len: usize,
        out_len: usize,
        mut sink: impl FnMut(usize, usize, &[f32]),
    ) -> TractResult<()> {
        ensure!(x.len() == self.inputs * len && !self.residual);
        let kernel = fastest_kernel(self.outputs);
        let p_view = self.packed.try_as_plain_ram()?;
        let packed = p_view.as_slice::<f32>()?;
        let b_view = self.bias.try_as_plain_ram()?;
        let bias = b_view.as_slice::<f32>()?;
        let tile = self.tile_outputs(kernel.block);
        let stride = self.scratch_stride(tile, kernel.block);
        let mut scratch = vec![0.0f32; self.inputs * stride];
        let mut block = vec![0.0f32; self.outputs * tile];
        let mut t0 = 0;
        while t0 < out_len {
            let count = tile.min(out_len - t0);
            self.fill_tile(x, len, t0, &mut scratch, stride);
            let tile = Tile {
                scratch: &scratch,
                stride,
                t0: 0,
                count,
            };
            let block = &mut block[..self.outputs * count];
            // SAFETY: as in `run`, with `block` the output: `outputs` rows of `count`, the tile's outputs from 0.
            unsafe { (kernel.run)(self, &tile, packed, bias, None, block, count) };
            sink(t0, count, block);
            t0 += count;
        }
        Ok(())
    }

    pub(super) fn set_leak(&mut self, slope: f32) {
        self.leak = Some(slope);
    }
}

/// A tile of outputs and its input rows.
struct Tile<'a> {
    scratch: &'a [f32],
    stride: usize,
    /// The first output of the tile.
    t0: usize,
    /// Outputs in the tile.
    count: usize,
}

/// A kernel's signature: the op, the tile, the packed weights, the padded bias, the residual input, the output and
/// its length.
type TileFn = unsafe fn(&Conv1d, &Tile, &[f32], &[f32], Option<&[f32]>, &mut [f32], usize);

/// A kernel over one tile and the block length it reads in.
struct Kernel {
    block: usize,
    run: TileFn,
}

/// The portable kernel: each output row of the tile as plain passes over the scratch rows, which the compiler
/// vectorises.
///
/// # Safety
/// None beyond the slices' own checks (it is `unsafe` only to share the kernels' type).
unsafe fn tile_generic(
    op: &Conv1d,
    tile: &Tile,
    packed: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    out_len: usize,
) {
    let (inputs, taps) = (op.inputs, op.taps);
    for o in 0..op.outputs {
        let (g, j) = (o / BLOCK_CHANNELS, o % BLOCK_CHANNELS);
        let row = &mut out[o * out_len + tile.t0..o * out_len + tile.t0 + tile.count];
        row.fill(bias[o]);
        for i in 0..inputs {
            for k in 0..taps {
                let w = packed[((g * inputs + i) * taps + k) * BLOCK_CHANNELS + j];
                let at = i * tile.stride + k * op.dilation;
                for (y, v) in row.iter_mut().zip(&tile.scratch[at..at + tile.count]) {
                    *y += w * v;
                }
            }
        }
        if let Some(x) = residual {
            let from = o * out_len + tile.t0;
            for (y, v) in row.iter_mut().zip(&x[from..from + tile.count]) {
                *y += v;
            }
        }
    }
}

/// A kernel for one vector width: blocks of `channels` outputs × `vectors` vectors of samples in registers,
/// accumulated over every input channel and tap, stored once with the residual added. Four channels is the usual
/// block; one channel with more samples serves convolutions with fewer than four outputs (the decoder's last).
macro_rules! tile_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, lanes $lanes:literal, channels $channels:literal,
     vectors $vectors:literal, $load:ident, $store:ident, $fma:ident, $set1:ident, $add:ident, $zero:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must have the target features; the slices as [`Conv1d::run`] passes them.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            op: &Conv1d,
            tile: &Tile,
            packed: &[f32],
            bias: &[f32],
            residual: Option<&[f32]>,
            out: &mut [f32],
            out_len: usize,
        ) {
            use std::arch::x86_64::*;
            const BLOCK: usize = $lanes * $vectors;
            let (inputs, taps, dilation) = (op.inputs, op.taps, op.dilation);
            let groups = op.outputs.div_ceil(BLOCK_CHANNELS);
            let blocks = op.outputs.div_ceil($channels);
            const { assert!(BLOCK_CHANNELS.is_multiple_of($channels)) };
            assert!(packed.len() == groups * inputs * taps * BLOCK_CHANNELS);
            assert!(bias.len() == groups * BLOCK_CHANNELS && out.len() >= op.outputs * out_len);
            assert!(tile.count.div_ceil(BLOCK) * BLOCK + op.halo() <= tile.stride);
            assert!(tile.scratch.len() >= inputs * tile.stride && tile.t0 + tile.count <= out_len);
            let (sp, wp, outp) = (tile.scratch.as_ptr(), packed.as_ptr(), out.as_mut_ptr());
            // Where a block that runs past the tile's end is stored before its outputs are copied out.
            let mut partial = [0.0f32; BLOCK];
            let mut sub = 0;
            while sub < tile.count {
                let valid = (tile.count - sub).min(BLOCK);
                for b in 0..blocks {
                    // The block's first output channel; its weights are the packed group's columns from there.
                    let o0 = b * $channels;
                    let mut acc = [[$zero(); $vectors]; $channels];
                    for (j, row) in acc.iter_mut().enumerate() {
                        *row = [$set1(bias[o0 + j]); $vectors];
                    }
                    // SAFETY: the weights read are columns o0 % 4 .. o0 % 4 + channels of group o0 / 4's I·K rows
                    // of four (inside `packed`, asserted above); each load reads scratch row i from sub + k·dilation
                    // for BLOCK values, which ends within the row (asserted: count rounded up to a block, plus the
                    // halo, fits in the stride).
                    unsafe {
                        let group = o0 / BLOCK_CHANNELS;
                        let mut wr = wp.add(group * inputs * taps * BLOCK_CHANNELS + o0 % BLOCK_CHANNELS);
                        for i in 0..inputs {
                            let row = sp.add(i * tile.stride + sub);
                            for k in 0..taps {
                                let xr = row.add(k * dilation);
                                let mut xv = [$zero(); $vectors];
                                for (m, v) in xv.iter_mut().enumerate() {
                                    *v = $load(xr.add($lanes * m));
                                }
                                for (j, row) in acc.iter_mut().enumerate() {
                                    let w = $set1(*wr.add(j));
                                    for (a, v) in row.iter_mut().zip(xv) {
                                        *a = $fma(w, v, *a);
                                    }
                                }
                                wr = wr.add(BLOCK_CHANNELS);
                            }
                        }
                    }
                    for (j, row) in acc.iter().enumerate() {
                        let o = o0 + j;
                        if o >= op.outputs {
                            break;
                        }
                        let at = o * out_len + tile.t0 + sub;
                        for (m, a) in row.iter().enumerate() {
                            let mut v = *a;
                            if valid == BLOCK {
                                if let Some(x) = residual {
                                    // SAFETY: at + BLOCK <= o·out_len + t0 + count <= (o + 1)·out_len, and the
                                    // residual has the output's shape (checked by `eval`).
                                    v = $add(v, unsafe { $load(x.as_ptr().add(at + $lanes * m)) });
                                }
                                // SAFETY: as above, inside `out`.
                                unsafe { $store(outp.add(at + $lanes * m), v) };
                            } else {
                                // SAFETY: lanes·(m + 1) <= BLOCK: inside `partial`.
                                unsafe { $store(partial.as_mut_ptr().add($lanes * m), v) };
                            }
                        }
                        if valid < BLOCK {
                            let target = &mut out[at..at + valid];
                            target.copy_from_slice(&partial[..valid]);
                            if let Some(x) = residual {
                                for (y, v) in target.iter_mut().zip(&x[at..at + valid]) {
                                    *y += v;
                                }
                            }
                        }
                    }
                }
                sub += BLOCK;
            }
        }
    };
}

tile_kernel!(
    /// AVX2 and FMA: four channels × 24 samples in twelve of the sixteen registers.
    tile_avx2, "avx2,fma", lanes 8, channels 4, vectors 3,
    _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_setzero_ps
);

tile_kernel!(
    /// AVX2 and FMA, one channel: 96 samples in twelve registers.
    tile_avx2_narrow, "avx2,fma", lanes 8, channels 1, vectors 12,
    _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_setzero_ps
);

tile_kernel!(
    /// AVX-512: four channels × 64 samples in sixteen of the thirty-two registers.
    tile_avx512, "avx512f", lanes 16, channels 4, vectors 4,
    _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_setzero_ps
);

tile_kernel!(
    /// AVX-512, one channel: 256 samples in sixteen registers.
    tile_avx512_narrow, "avx512f", lanes 16, channels 1, vectors 16,
    _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_setzero_ps
);

const GENERIC: Kernel = Kernel {
    block: 64,
    run: tile_generic,
};

/// The widest kernel this CPU runs for `outputs` output channels (fewer than a block of four: one at a time).
fn fastest_kernel(outputs: usize) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        let narrow = outputs < BLOCK_CHANNELS;
        if crate::nn::simd::avx512() {
            return match narrow {
                false => Kernel {
                    block: 64,
                    run: tile_avx512,
                },
                true => Kernel {
                    block: 256,
                    run: tile_avx512_narrow,
                },
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return match narrow {
                false => Kernel {
                    block: 24,
                    run: tile_avx2,
                },
                true => Kernel {
                    block: 96,
                    run: tile_avx2_narrow,
                },
            };
        }
    }
    let _ = outputs;
    GENERIC
}

impl Op for Conv1d {
    fn name(&self) -> StaticName {
        "Conv1d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, {} taps at dilation {}, pads {:?}{}{}",
            self.inputs,
            self.outputs,
            self.taps,
            self.dilation,
            self.pad,
            self.leak
                .map(|s| format!(", leaky input ({s})"))
                .unwrap_or_default(),
            if self.residual { ", residual" } else { "" }
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Conv1d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Conv1d takes one input");
        let x = &inputs[0];
        let &[batch, channels, len] = x.shape() else {
            bail!("Conv1d wants [N, C, L], got {:?}", x.shape());
        };
        ensure!(
            channels == self.inputs,
            "Conv1d for {} channels over {:?}",
            self.inputs,
            x.shape()
        );
        let out_len = self
            .output_len(len)
            .with_context(|| format!("Conv1d's {} taps over {len} samples", self.taps))?;
        ensure!(
            !self.residual || (self.outputs == self.inputs && out_len == len),
            "Conv1d's residual needs the output shaped as the input"
        );
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        let out_shape = [batch, self.outputs, out_len];
        if batch * self.outputs * out_len == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: every tile
        // of every output row, whole blocks and the partial last one.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        let kernel = fastest_kernel(self.outputs);
        for (x, y) in input
            .chunks_exact(channels * len)
            .zip(output.chunks_exact_mut(self.outputs * out_len))
        {
            self.run(&kernel, x, len, y, out_len)?;
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Conv1d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type() && x.rank() == 3);
        let len = x.shape[2].clone() + (self.pad.0 + self.pad.1) as i64 - self.halo() as i64;
        Ok(tvec!(f32::fact(&[
            x.shape[0].clone(),
            self.outputs.to_dim(),
            len
        ])))
    }

    as_op!();
}

/// The [`Conv1d`] for `node` when it is a float one-dimensional convolution over `[N, C, L]` with stride 1, one
/// group, explicit padding and a constant kernel and bias.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Conv1d>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let one = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&d| d == 1));
    let dilation = match &spec.dilations {
        None => 1,
        Some(d) if d.len() == 1 => d[0],
        Some(_) => return Ok(None),
    };
    let pad = match &spec.padding {
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, _)
            if before.len() == 1 && after.len() == 1 =>
        {
            (before[0], after[0])
        }
        PaddingSpec::Valid => (0, 0),
        _ => return Ok(None),
    };
    if conv.q_params.is_some()
        || !one(&spec.strides)
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
    {
        return Ok(None);
    }
    let Some((kernel, bias)) = constant_weights(model, node, spec)? else {
        return Ok(None);
    };
    Conv1d::new(&kernel, &bias, dilation, pad)
}

/// The constant kernel (`[O, I, K]`, as `spec` describes it) and bias of a one-dimensional convolution or
/// transposed convolution `node` over a float `[N, I, L]`, or `None` when anything disagrees.
pub(super) fn constant_weights(
    model: &TypedModel,
    node: &TypedNode,
    spec: &PoolSpec,
) -> TractResult<Option<(Arc<Tensor>, Arc<Tensor>)>> {
    if spec.kernel_shape.len() != 1
        || spec.data_format != DataFormat::NCHW
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    if x.datum_type != f32::datum_type()
        || x.rank() != 3
        || x.shape[1] != spec.input_channels.to_dim()
    {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    if kernel.shape()
        != [
            spec.output_channels,
            spec.input_channels,
            spec.kernel_shape[0],
        ]
    {
        return Ok(None);
    }
    Ok(Some((kernel, bias)))
}

/// The slope of `node` when it is a LeakyReLU.
fn leaky_slope(node: &TypedNode) -> Option<f32> {
    node.op_as::<ElementWiseOp>()
        .and_then(|op| op.0.downcast_ref::<LeakyRelu>())
        .map(|leaky| leaky.alpha)
}

/// What a convolution reads, seen through a LeakyReLU before it: the LeakyReLU's input and slope (the op applies
/// it as it copies its tiles, so it is folded in whatever else reads it), or the convolution's own input; with the
/// node whose first input that is.
pub(super) fn through_leaky(
    model: &TypedModel,
    conv: &TypedNode,
) -> Option<(OutletId, Option<f32>, usize)> {
    let input = *conv.inputs.first()?;
    let before = model.node(input.node);
    match (leaky_slope(before), before.inputs.first()) {
        (Some(slope), Some(&x)) => Some((x, Some(slope), before.id)),
        _ => Some((input, None, conv.id)),
    }
}

/// The op for the convolution `node` with the LeakyReLU before it and a residual `Add` of the LeakyReLU's input
/// after it folded in; the node whose first input it reads, and the last node it replaces.
fn fused_replacement(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<(Conv1d, usize, usize)>> {
    let (Some(mut op), Some((x, leak, reader))) =
        (replacement(model, node)?, through_leaky(model, node))
    else {
        return Ok(None);
    };
    op.leak = leak;
    let Some(add) = only_successor(model, node) else {
        return Ok(Some((op, reader, node.id)));
    };
    let conv_out = OutletId::new(node.id, 0);
    let is_add = add.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>());
    let same_shape = model.outlet_fact(x)?.shape == model.outlet_fact(conv_out)?.shape;
    if is_add && same_shape && other_input(add, conv_out) == Some(x) {
        op.residual = true;
        return Ok(Some((op, reader, add.id)));
    }
    Ok(Some((op, reader, node.id)))
}

/// Puts a [`Conv1d`] in place of every one-dimensional convolution of `model` it can compute (decluttered, not yet
/// optimised; the length may be symbolic), with a LeakyReLU before and a residual `Add` after folded in; returns
/// how many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    replace_chains_reading(model, fused_replacement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math::Mul;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A convolution's shape: input channels, output channels, taps, dilation, padding before and after.
    #[derive(Clone, Copy, Debug)]
    struct Shape {
        inputs: usize,
        outputs: usize,
        taps: usize,
        dilation: usize,
        pad: (usize, usize),
    }

    const fn shape(
        inputs: usize,
        outputs: usize,
        taps: usize,
        dilation: usize,
        pad: (usize, usize),
    ) -> Shape {
        Shape {
            inputs,
            outputs,
            taps,
            dilation,
            pad,
        }
    }

    fn weights(s: Shape) -> Tensor {
        let w: Vec<f32> = values(s.outputs * s.inputs * s.taps, 5)
            .iter()
            .map(|v| v / 10.0)
            .collect();
        Tensor::from_shape(&[s.outputs, s.inputs, s.taps], &w).unwrap()
    }

    fn bias(s: Shape) -> Tensor {
        Tensor::from_shape(&[s.outputs], &values(s.outputs, 11)).unwrap()
    }

    /// Wires tract's `Conv` of `s` on `x`, with `stride` and `group`.
    fn wire_conv(
        model: &mut TypedModel,
        name: &str,
        x: OutletId,
        s: Shape,
        stride: usize,
        group: usize,
    ) -> OutletId {
        let mut w = weights(s);
        if group > 1 {
            w = Tensor::from_shape(
                &[s.outputs, s.inputs / group, s.taps],
                &values(s.outputs * s.inputs / group * s.taps, 5),
            )
            .unwrap();
        }
        let kernel = model.add_const(format!("{name}.w"), w).unwrap();
        let bias = model.add_const(format!("{name}.b"), bias(s)).unwrap();
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(s.taps),
                padding: PaddingSpec::Explicit(tvec!(s.pad.0), tvec!(s.pad.1)),
                dilations: Some(tvec!(s.dilation)),
                strides: Some(tvec!(stride)),
                input_channels: s.inputs,
                output_channels: s.outputs,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        };
        model.wire_node(name, conv, &[x, kernel, bias]).unwrap()[0]
    }

    fn leaky(model: &mut TypedModel, name: &str, x: OutletId, alpha: f32) -> OutletId {
        let op = ElementWiseOp(Box::new(LeakyRelu { alpha }), None);
        model.wire_node(name, op, &[x]).unwrap()[0]
    }

    fn add(model: &mut TypedModel, name: &str, a: OutletId, b: OutletId) -> OutletId {
        model
            .wire_node(name, TypedBinOp(Box::new(Add), None), &[a, b])
            .unwrap()[0]
    }

    fn run(model: TypedModel, x: &Tensor) -> Vec<Vec<f32>> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(x.clone().into()))
            .unwrap()
            .iter()
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }

    fn op_names(model: &TypedModel) -> Vec<String> {
        model
            .nodes()
            .iter()
            .map(|n| n.op().name().to_string())
            .filter(|n| n != "Source" && n != "Const")
            .collect()
    }

    fn assert_close(ours: &[Vec<f32>], reference: &[Vec<f32>], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}: outputs");
        for (a, b) in ours.iter().zip(reference) {
            assert_eq!(a.len(), b.len(), "{what}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                    "{what}: at {i} ours {x}, reference {y}"
                );
            }
        }
    }

    /// Runs `model` as tract has it and with [`rewrite`], checks they agree, and returns how many were rewritten
    /// and the rewritten model's ops.
    fn compare(model: TypedModel, x: &Tensor, what: &str) -> (usize, Vec<String>) {
        let reference = run(model.clone(), x);
        let mut ours = model;
        let taken = rewrite(&mut ours).unwrap();
        let names = op_names(&ours);
        assert_close(&run(ours, x), &reference, what);
        (taken, names)
    }

    fn input(batch: usize, channels: usize, len: usize) -> Tensor {
        Tensor::from_shape(&[batch, channels, len], &values(batch * channels * len, 1)).unwrap()
    }

    #[test]
    fn it_computes_what_tracts_convolution_computes() {
        let cases = [
            // (shape, batch, length)
            (shape(3, 5, 3, 1, (1, 1)), 1, 50),
            (shape(8, 4, 5, 2, (4, 4)), 1, 300),
            (shape(32, 32, 7, 3, (9, 9)), 1, 1000),
            // More than one tile (64 inputs: tiles of 256 outputs), channels left over after the blocks of four.
            (shape(64, 6, 3, 1, (1, 1)), 1, 1000),
            // One output channel (the narrow kernel), padding on one side only, no padding, a batch of two.
            (shape(6, 1, 7, 1, (3, 3)), 1, 777),
            (shape(4, 6, 3, 1, (0, 2)), 1, 10),
            (shape(5, 8, 4, 2, (0, 0)), 2, 9),
            // A signal shorter than the taps reach, made up by padding.
            (shape(2, 4, 5, 3, (6, 6)), 1, 3),
        ];
        for (s, batch, len) in cases {
            let mut model = TypedModel::default();
            let x = model
                .add_source("x", f32::fact([batch, s.inputs, len]))
                .unwrap();
            let y = wire_conv(&mut model, "conv", x, s, 1, 1);
            model.select_output_outlets(&[y]).unwrap();
            let (taken, names) = compare(
                model,
                &input(batch, s.inputs, len),
                &format!("{s:?} over {len}"),
            );
            assert_eq!((taken, names), (1, vec!["Conv1d".to_string()]), "{s:?}");
        }
    }

    #[test]
    fn the_leaky_relu_before_and_the_residual_add_after_are_folded_in() {
        let s = shape(16, 16, 5, 2, (4, 4));
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 16, 500])).unwrap();
        let l = leaky(&mut model, "leaky", x, 0.1);
        let c = wire_conv(&mut model, "conv", l, s, 1, 1);
        let y = add(&mut model, "add", c, x);
        model.select_output_outlets(&[y]).unwrap();
        let mut ours = model.clone();
        let (taken, names) = compare(model, &input(1, 16, 500), "leaky, conv, add");
        assert_eq!((taken, names), (1, vec!["Conv1d".to_string()]));
        rewrite(&mut ours).unwrap();
        let op = ours
            .nodes()
            .iter()
            .find_map(|n| n.op_as::<Conv1d>())
            .unwrap();
        assert_eq!((op.leak, op.residual), (Some(0.1), true));

        // The residual read first (`x + conv`) is the same add.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 16, 64])).unwrap();
        let l = leaky(&mut model, "leaky", x, 0.2);
        let c = wire_conv(&mut model, "conv", l, s, 1, 1);
        let y = add(&mut model, "add", x, c);
        model.select_output_outlets(&[y]).unwrap();
        let (taken, names) = compare(model, &input(1, 16, 64), "leaky, conv, x + conv");
        assert_eq!((taken, names), (1, vec!["Conv1d".to_string()]));
    }

    #[test]
    fn a_leaky_relu_shared_by_three_blocks_is_folded_into_each() {
        // HiFi-GAN's three residual blocks on one upsampled signal, as tract's clean-up leaves them: one LeakyReLU of
        // the signal read by the three first convolutions, each added back to the signal.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 8, 200])).unwrap();
        let l = leaky(&mut model, "leaky", x, 0.1);
        let mut sums = Vec::new();
        for (b, taps) in [3, 5, 7].into_iter().enumerate() {
            let s = shape(8, 8, taps, 2, (taps - 1, taps - 1));
            let c = wire_conv(&mut model, &format!("conv{b}"), l, s, 1, 1);
            sums.push(add(&mut model, &format!("add{b}"), c, x));
        }
        let total = add(&mut model, "total", sums[0], sums[1]);
        let total = add(&mut model, "total2", total, sums[2]);
        model.select_output_outlets(&[total]).unwrap();
        let (taken, names) = compare(model, &input(1, 8, 200), "three blocks on one LeakyReLU");
        assert_eq!(taken, 3);
        assert_eq!(
            names.iter().filter(|n| n.as_str() == "Conv1d").count(),
            3,
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "LeakyRelu"), "{names:?}");
        // Only the two adds of the blocks' sums are left.
        assert_eq!(names.len(), 5, "{names:?}");
    }

    #[test]
    fn what_else_reads_or_another_operand_is_not_folded_in() {
        let s = shape(8, 8, 3, 1, (1, 1));
        let x = input(1, 8, 100);
        // The LeakyReLU's output is also a model output: it stays, and the convolution recomputes it.
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact([1, 8, 100])).unwrap();
        let l = leaky(&mut model, "leaky", src, 0.1);
        let c = wire_conv(&mut model, "conv", l, s, 1, 1);
        model.select_output_outlets(&[c, l]).unwrap();
        let (taken, names) = compare(model, &x, "leaky also an output");
        assert_eq!(taken, 1);
        assert!(names.contains(&"LeakyRelu".to_string()), "{names:?}");

        // The add's other operand is not the convolution's input: the add stays.
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact([1, 8, 100])).unwrap();
        let other = leaky(&mut model, "other", src, 0.3);
        let c = wire_conv(&mut model, "conv", src, s, 1, 1);
        let y = add(&mut model, "add", c, other);
        model.select_output_outlets(&[y]).unwrap();
        let (taken, names) = compare(model, &x, "add of something else");
        assert_eq!(taken, 1);
        assert!(names.iter().any(|n| n.contains("Add")), "{names:?}");

        // The convolution's output is read by the add and by a multiply: nothing after it is folded.
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact([1, 8, 100])).unwrap();
        let c = wire_conv(&mut model, "conv", src, s, 1, 1);
        let y = add(&mut model, "add", c, src);
        let z = model
            .wire_node("mul", TypedBinOp(Box::new(Mul), None), &[c, src])
            .unwrap()[0];
        model.select_output_outlets(&[y, z]).unwrap();
        let (taken, names) = compare(model, &x, "conv read twice");
        assert_eq!(taken, 1);
        assert!(names.iter().any(|n| n.contains("Add")), "{names:?}");
    }

    #[test]
    fn other_convolutions_are_left_to_tract() {
        let s = shape(8, 8, 3, 1, (1, 1));
        for (stride, group) in [(2, 1), (1, 2), (1, 8)] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, 8, 40])).unwrap();
            let y = wire_conv(&mut model, "conv", x, s, stride, group);
            model.select_output_outlets(&[y]).unwrap();
            assert_eq!(
                rewrite(&mut model).unwrap(),
                0,
                "stride {stride}, group {group}"
            );
        }
    }

    /// The definition, straight from the formula.
    fn definition(
        op_shape: Shape,
        x: &[f32],
        len: usize,
        leak: Option<f32>,
        residual: bool,
    ) -> Vec<f32> {
        let (w, b) = (weights(op_shape), bias(op_shape));
        let (w, b) = (w.try_as_plain_ram().unwrap(), b.try_as_plain_ram().unwrap());
        let (w, b) = (w.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
        let Shape {
            inputs,
            outputs,
            taps,
            dilation,
            pad,
        } = op_shape;
        let out_len = len + pad.0 + pad.1 - dilation * (taps - 1);
        let mut y = vec![0.0f32; outputs * out_len];
        for o in 0..outputs {
            for t in 0..out_len {
                let mut sum = b[o];
                for i in 0..inputs {
                    for k in 0..taps {
                        let at = (t + k * dilation) as isize - pad.0 as isize;
                        if at >= 0 && (at as usize) < len {
                            let v = x[i * len + at as usize];
                            let v = match leak {
                                Some(a) if v < 0.0 => v * a,
                                _ => v,
                            };
                            sum += w[(o * inputs + i) * taps + k] * v;
                        }
                    }
                }
                if residual {
                    sum += x[o * len + t];
                }
                y[o * out_len + t] = sum;
            }
        }
        y
    }

    #[test]
    fn every_kernel_computes_the_definition() {
        let mut kernels = vec![("generic", GENERIC)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push((
                    "avx2",
                    Kernel {
                        block: 24,
                        run: tile_avx2,
                    },
                ));
                kernels.push((
                    "avx2 narrow",
                    Kernel {
                        block: 96,
                        run: tile_avx2_narrow,
                    },
                ));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push((
                    "avx512",
                    Kernel {
                        block: 64,
                        run: tile_avx512,
                    },
                ));
                kernels.push((
                    "avx512 narrow",
                    Kernel {
                        block: 256,
                        run: tile_avx512_narrow,
                    },
                ));
            }
        }
        let cases = [
            (shape(6, 6, 5, 2, (4, 4)), 700, Some(0.1), true),
            (shape(64, 7, 3, 3, (3, 3)), 1001, None, false),
            (shape(3, 3, 7, 1, (3, 3)), 30, Some(0.01), false),
            (shape(5, 1, 2, 1, (0, 1)), 513, None, false),
        ];
        for (name, kernel) in &kernels {
            for (s, len, leak, residual) in cases {
                let mut op = Conv1d::new(&weights(s), &bias(s), s.dilation, s.pad)
                    .unwrap()
                    .unwrap();
                (op.leak, op.residual) = (leak, residual);
                let x = values(s.inputs * len, 2);
                let out_len = op.output_len(len).unwrap();
                let mut y = vec![f32::NAN; s.outputs * out_len];
                op.run(kernel, &x, len, &mut y, out_len).unwrap();
                let expected = definition(s, &x, len, leak, residual);
                assert_close(&[y], &[expected], &format!("{name}: {s:?} over {len}"));
            }
        }
    }

    #[test]
    fn a_symbolic_length_is_kept_and_made_concrete_later() {
        let s = shape(4, 4, 3, 2, (2, 2));
        let mut model = TypedModel::default();
        let len = model.symbols.sym("L");
        let x = model
            .add_source("x", f32::fact(&[1.to_dim(), 4.to_dim(), len.to_dim()]))
            .unwrap();
        let l = leaky(&mut model, "leaky", x, 0.1);
        let c = wire_conv(&mut model, "conv", l, s, 1, 1);
        let y = add(&mut model, "add", c, x);
        model.select_output_outlets(&[y]).unwrap();
        let mut ours = model.clone();
        assert_eq!(rewrite(&mut ours).unwrap(), 1);
        assert_eq!(
            ours.outlet_fact(ours.output_outlets().unwrap()[0])
                .unwrap()
                .shape[2],
            len.to_dim()
        );
        let concrete = |m: &TypedModel| {
            m.set_symbols(&std::collections::HashMap::from([(
                len.clone(),
                77i64.to_dim(),
            )]))
            .unwrap()
        };
        let x = input(1, 4, 77);
        assert_close(
            &run(concrete(&ours), &x),
            &run(concrete(&model), &x),
            "symbolic",
        );
    }

    #[test]
    fn lying_inputs_are_refused() {
        let s = shape(4, 4, 5, 1, (0, 0));
        let mut op = Conv1d::new(&weights(s), &bias(s), 1, (0, 0))
            .unwrap()
            .unwrap();
        let eval = |op: &Conv1d, shape: &[usize]| {
            let n = shape.iter().product();
            let x = Tensor::from_shape(shape, &values(n, 0)).unwrap();
            op.eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
        };
        assert!(eval(&op, &[1, 4, 10]).is_ok());
        assert!(eval(&op, &[1, 3, 10]).is_err(), "wrong channel count");
        assert!(eval(&op, &[4, 10]).is_err(), "no batch axis");
        assert!(eval(&op, &[1, 4, 3]).is_err(), "fewer samples than taps");
        op.residual = true;
        assert!(
            eval(&op, &[1, 4, 10]).is_err(),
            "a residual of another length"
        );
        // Weights that disagree with the bias, or a zero dilation, make no op.
        let bad_bias = Tensor::from_shape(&[3], &[0.0f32; 3]).unwrap();
        assert!(Conv1d::new(&weights(s), &bad_bias, 1, (0, 0))
            .unwrap()
            .is_none());
        assert!(Conv1d::new(&weights(s), &bias(s), 0, (0, 0))
            .unwrap()
            .is_none());
    }
}
