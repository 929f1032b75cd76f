//! 3×3 depthwise convolutions (one filter per channel, padding 1, stride 1 or 2) as [`Depthwise3x3`], put in place
//! of tract's `Conv` by [`rewrite`] before a face model is optimised — and, as the same op (named `Conv3x3`), a full
//! 3×3 convolution over a few channels (a model's first layer, over RGB: each output sums the nine taps of every
//! input, band by band of rows so that the inputs stay in cache across the output channels) — with what follows folded in when nothing else
//! reads what it would consume: a batch norm and a ReLU or PRelu ([`crate::vision::epilogue`]; SFace), and a 2×2
//! max-pool (YuNet: each such triple was three passes over a large plane; now the convolved rows are pooled as they
//! are made and never stored). tract vectorises only wide stride-1 planes (`depthwise::contiguous`) and walks the
//! rest tap by tap; SFace's 56×56 and smaller planes and its stride-2 convolutions were the slow case. Each plane is
//! copied once with a border of zeros, at stride 2 split into its four phases of even and odd rows and columns
//! ([`Layout`]), so that every tap of every output pixel is a fixed offset from the pixel's place in a flat run:
//! a band of output rows is one pass of nine multiply-adds, however narrow the rows (row by row, a 7-pixel row
//! was mostly loop overhead). Compiled for AVX-512 or AVX2 and FMA when the CPU has them (checked at run time, as
//! tract checks for its own kernels; without them the same code is slower than tract's). The sums are the same
//! products added in another order, so results agree with tract's to rounding (tests compare both).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::nn::fusion::{only_successor, replace_chains};
use crate::vision::epilogue::{Activation, Epilogue};
use crate::vision::maxpool::{is_pool_2x2, pool_rows};

/// A depthwise 3×3 convolution over NCHW (or CHW, a batch of one) f32, zero padding of one on every side, and what
/// followed it in the model when the rewrite could fold it in: a per-channel scale and shift (in the kernel and
/// bias), an activation, then a 2×2 max-pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise3x3 {
    /// `[O, inputs·9]`: each output channel's filters, one per input it reads, row by row.
    kernel: Arc<Tensor>,
    /// `[O]`.
    bias: Arc<Tensor>,
    /// The input channels each output reads: 1 for a depthwise convolution (output channel `c` reads input `c`),
    /// or all of a few (at most [`MAX_INPUTS`]: a model's first convolution, over RGB).
    inputs: usize,
    /// 1 or 2, along both axes.
    stride: usize,
    /// Applied to the convolution's output.
    activation: Activation,
    /// Then the maximum of each 2×2 block, stride 2, no padding (an odd last row or column is dropped): a max-pool
    /// that followed. The convolution's output is never stored whole.
    pool: bool,
}

impl Depthwise3x3 {
    fn convolved_side(side: usize, stride: usize) -> usize {
        if side == 0 {
            0
        } else {
            (side - 1) / stride + 1
        }
    }

    /// The output's height and width for an input plane of `h`×`w`.
    fn output_plane(&self, h: usize, w: usize) -> (usize, usize) {
        let (ho, wo) = (
            Self::convolved_side(h, self.stride),
            Self::convolved_side(w, self.stride),
        );
        if self.pool {
            (ho / 2, wo / 2)
        } else {
            (ho, wo)
        }
    }
}

/// `a·b + c`, fused when the caller is compiled with FMA (without it, `mul_add` would be a slow library call).
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The most input channels a full (not depthwise) convolution may have to be taken: a first layer over RGB(A).
const MAX_INPUTS: usize = 4;

/// `out[q] = bias + Σ k[j]·taps[j][q]` over nine views the length of `out` — or, with `ADD`, `out[q] += Σ …` (a
/// further input channel; `bias` unused) — in one pass the compiler vectorises (every view is cut to that length
/// first, so no bounds checks).
#[inline(always)]
fn nine_taps<const FMA: bool, const ADD: bool>(
    out: &mut [f32],
    taps: [&[f32]; 9],
    k: &[f32; 9],
    bias: f32,
) {
    let n = out.len();
    let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = taps.map(|view| &view[..n]);
    for (q, o) in out.iter_mut().enumerate() {
        let start = if ADD { *o } else { bias };
        let mut v = mul_add::<FMA>(k[0], t0[q], start);
        v = mul_add::<FMA>(k[1], t1[q], v);
        v = mul_add::<FMA>(k[2], t2[q], v);
        v = mul_add::<FMA>(k[3], t3[q], v);
        v = mul_add::<FMA>(k[4], t4[q], v);
        v = mul_add::<FMA>(k[5], t5[q], v);
        v = mul_add::<FMA>(k[6], t6[q], v);
        v = mul_add::<FMA>(k[7], t7[q], v);
        *o = mul_add::<FMA>(k[8], t8[q], v);
    }
}

/// Values per band of convolved rows: a band and the padded rows it reads stay in the first-level cache.
const BAND_VALUES: usize = 2048;

/// How one input plane is laid out with its border of zeros so that, for every output pixel `(y, x)`, each of the
/// nine taps is the value at `y·row + x` plus a fixed offset — the whole plane one flat pass per tap, however
/// narrow its rows (SFace's are 7 to 56 pixels). At stride 1 it is the padded plane, rows `row = w + 2` apart. At
/// stride 2 it is the padded plane's four phases one after the other (even rows' even columns, even rows' odd
/// columns, odd rows' even ones, odd rows' odd ones), each `rows × row` with `row = wo + 1`: padded pixel
/// `(2y + r, 2x + t)` is phase `(r mod 2, t mod 2)` at `(y + r/2, x + t/2)`. Values at `x ≥ wo` of a flat pass are
/// computed and thrown away.
struct Layout {
    /// Values between the starts of two rows, in the padded plane (and in a band of output).
    row: usize,
    /// Rows of the padded plane (stride 1) or of each phase (stride 2).
    rows: usize,
    /// Where tap `(r, t)` reads, relative to the output pixel's `y·row + x`: index `3r + t`.
    taps: [usize; 9],
}

impl Layout {
    fn new((h, w): (usize, usize), stride: usize) -> Layout {
        if stride == 1 {
            let row = w + 2;
            let taps = std::array::from_fn(|j| (j / 3) * row + j % 3);
            Layout {
                row,
                rows: h + 2,
                taps,
            }
        } else {
            let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
            let (row, rows) = (wo + 1, ho + 1);
            let taps = std::array::from_fn(|j| {
                let (r, t) = (j / 3, j % 3);
                ((r % 2) * 2 + t % 2) * rows * row + (r / 2) * row + t / 2
            });
            Layout { row, rows, taps }
        }
    }

    /// Values of one padded plane (all its phases).
    fn plane_len(&self, stride: usize) -> usize {
        (if stride == 1 { 1 } else { 4 }) * self.rows * self.row
    }

    /// Copies each of the planes (`h`×`w`) into `padded`, one after the other, zeros around them.
    fn fill(&self, planes: &[f32], (h, w): (usize, usize), stride: usize, padded: &mut Vec<f32>) {
        let len = self.plane_len(stride);
        let count = planes.len() / (h * w);
        padded.clear();
        padded.resize(count * len, 0.0);
        for (plane, padded) in planes.chunks_exact(h * w).zip(padded.chunks_exact_mut(len)) {
            self.fill_one(plane, (h, w), stride, padded);
        }
    }

    /// Copies `plane` (`h`×`w`) into `padded` (zeros, [`Layout::plane_len`] long).
    fn fill_one(&self, plane: &[f32], (h, w): (usize, usize), stride: usize, padded: &mut [f32]) {
        let row = self.row;
        if stride == 1 {
            for (y, input) in plane.chunks_exact(w).enumerate() {
                let at = (y + 1) * row + 1;
                padded[at..at + w].copy_from_slice(input);
            }
            return;
        }
        let phase = self.rows * row;
        for (y, input) in plane.chunks_exact(w).enumerate().take(h) {
            // Padded row y + 1; input column x is padded column x + 1: even x goes to the odd-column phase at
            // x/2, odd x to the even-column phase at (x + 1)/2.
            let padded_row = y + 1;
            let (r, py) = (padded_row % 2, padded_row / 2);
            let even_cols = (2 * r) * phase + py * row;
            let odd_cols = (2 * r + 1) * phase + py * row;
            let pairs = input.chunks_exact(2);
            let tail = pairs.remainder().first().copied();
            let n = pairs.len();
            let (odd, even) = {
                let (a, b) = padded.split_at_mut(odd_cols);
                (&mut b[..n + 1], &mut a[even_cols + 1..even_cols + 1 + n])
            };
            for ((pair, o), e) in pairs.zip(odd.iter_mut()).zip(even.iter_mut()) {
                *o = pair[0];
                *e = pair[1];
            }
            if let Some(last) = tail {
                odd[n] = last;
            }
        }
    }
}

/// The buffers one plane needs besides its input and output, kept from plane to plane.
#[derive(Default)]
struct Scratch {
    /// The plane as [`Layout`] has it.
    padded: Vec<f32>,
    /// A band of convolved rows, `row` values apart.
    band: Vec<f32>,
}

/// Whole bands of convolved rows `row` values apart (an even number, for the pool).
fn band_rows(row: usize) -> usize {
    (BAND_VALUES / row).max(2) & !1
}

/// Output channel `ch`'s plane, its convolved rows from `rows.0` up to `rows.1` (all: `(0, usize::MAX)`; a range
/// starts on a band), from the op's `inputs` planes (consecutive in `planes`); with `fill`, they are copied into
/// the scratch first (without, they are there from the call before).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn convolve_plane<const FMA: bool>(
    (planes, fill, (first, end)): (&[f32], bool, (usize, usize)),
    (h, w): (usize, usize),
    ch: usize,
    (k, bias): (&[f32], f32),
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let stride = op.stride;
    let (ho, wo) = (
        Depthwise3x3::convolved_side(h, stride),
        Depthwise3x3::convolved_side(w, stride),
    );
    let (_, out_w) = op.output_plane(h, w);
    if out_w == 0 || ho == 0 {
        return;
    }
    let layout = Layout::new((h, w), stride);
    if fill {
        layout.fill(planes, (h, w), stride, &mut scratch.padded);
    }
    let padded = &scratch.padded;
    let plane_len = layout.plane_len(stride);
    let row = layout.row;
    let slopes = op.activation.slopes();
    // Activations that commute with a maximum are applied after the pool, to a quarter of the values.
    let after_pool = op.pool && op.activation.is_monotone();
    // Whole bands of rows (an even number when they are pooled).
    let band_rows = band_rows(row);
    scratch.band.resize(band_rows * row, 0.0);
    let band = &mut scratch.band;
    let rows = (if op.pool { ho & !1 } else { ho }).min(end);
    let mut y0 = first;
    while y0 < rows {
        let y1 = (y0 + band_rows).min(rows);
        let (start, len) = (y0 * row, (y1 - y0 - 1) * row + wo);
        let flat = &mut band[..len];
        for (i, filter) in k.chunks_exact(9).enumerate() {
            let Ok(filter) = <&[f32; 9]>::try_from(filter) else {
                continue;
            };
            let at = i * plane_len + start;
            let taps = layout.taps.map(|t| &padded[at + t..at + t + len]);
            if i == 0 {
                nine_taps::<FMA, false>(flat, taps, filter, bias);
            } else {
                nine_taps::<FMA, true>(flat, taps, filter, bias);
            }
        }
        if !after_pool {
            op.activation.apply(slopes, ch, flat);
        }
        if op.pool {
            for py in y0 / 2..y1 / 2 {
                let a = &band[(2 * py - y0) * row..][..wo];
                let b = &band[(2 * py + 1 - y0) * row..][..wo];
                let prow = &mut out[py * out_w..(py + 1) * out_w];
                pool_rows(prow, a, b);
                if after_pool {
                    op.activation.apply(slopes, ch, prow);
                }
            }
        } else {
            for y in y0..y1 {
                out[y * wo..(y + 1) * wo].copy_from_slice(&band[(y - y0) * row..][..wo]);
            }
        }
        y0 = y1;
    }
}

/// [`convolve_plane`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn convolve_plane_avx2(
    planes: (&[f32], bool, (usize, usize)),
    hw: (usize, usize),
    ch: usize,
    filter: (&[f32], f32),
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    convolve_plane::<true>(planes, hw, ch, filter, op, out, scratch)
}

/// [`convolve_plane`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn convolve_plane_avx512(
    planes: (&[f32], bool, (usize, usize)),
    hw: (usize, usize),
    ch: usize,
    filter: (&[f32], f32),
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    convolve_plane::<true>(planes, hw, ch, filter, op, out, scratch)
}

/// [`convolve_plane`] with the widest vectors this CPU has.
fn convolve_plane_fastest(
    planes: (&[f32], bool, (usize, usize)),
    hw: (usize, usize),
    ch: usize,
    filter: (&[f32], f32),
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::nn::simd::avx512() {
            // SAFETY: the function only needs AVX-512F, AVX2 and FMA, and this CPU has them (AVX-512F implies the
            // other two; `simd::avx512` checks it).
            return unsafe { convolve_plane_avx512(planes, hw, ch, filter, op, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the function only needs AVX2 and FMA, and this CPU has both (checked just above).
            return unsafe { convolve_plane_avx2(planes, hw, ch, filter, op, out, scratch) };
        }
    }
    convolve_plane::<false>(planes, hw, ch, filter, op, out, scratch)
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        if self.inputs == 1 {
            "Depthwise3x3".into()
        } else {
            "Conv3x3".into()
        }
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "stride {}{}{}",
            self.stride,
            self.activation.describe(),
            if self.pool { ", 2×2 max-pool" } else { "" }
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Depthwise3x3 takes one input");
        let x = &inputs[0];
        let shape = x.shape();
        let (n, c, h, w) = match *shape {
            [n, c, h, w] => (n, c, h, w),
            [c, h, w] => (1, c, h, w),
            _ => bail!("Depthwise3x3 wants NCHW or CHW, got {shape:?}"),
        };
        ensure!(h > 0 && w > 0, "Depthwise3x3 over an empty plane {shape:?}");
        let kernel_view = self.kernel.try_as_plain_ram()?;
        let kernel = kernel_view.as_slice::<f32>()?;
        let bias_view = self.bias.try_as_plain_ram()?;
        let bias = bias_view.as_slice::<f32>()?;
        let o = bias.len();
        let reads = self.inputs;
        ensure!(
            kernel.len() == o * reads * 9 && (if reads == 1 { c == o } else { c == reads }),
            "{} for {o} channels over {shape:?}",
            self.name()
        );
        let (ho, wo) = self.output_plane(h, w);
        let out_shape = if shape.len() == 4 {
            vec![n, o, ho, wo]
        } else {
            vec![o, ho, wo]
        };
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        ensure!(
            input.len() == n * c * h * w,
            "Depthwise3x3 over {} values for {shape:?}",
            input.len()
        );
        if ho * wo == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: each plane's
        // output is written row by row, every row whole (`convolve_plane`), and the planes cover the tensor.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        let mut scratch = Scratch::default();
        let filters = reads * 9;
        if reads == 1 {
            // Each output plane from its own input plane.
            for (i, (plane, out_plane)) in input
                .chunks_exact(h * w)
                .zip(output.chunks_exact_mut(ho * wo))
                .enumerate()
            {
                let ch = i % o;
                convolve_plane_fastest(
                    (plane, true, (0, usize::MAX)),
                    (h, w),
                    ch,
                    (&kernel[ch * 9..ch * 9 + 9], bias[ch]),
                    self,
                    out_plane,
                    &mut scratch,
                );
            }
        } else {
            // Every output plane from all the batch item's input planes, copied once; band by band, every output
            // channel in turn, so that the band's input rows stay in the first-level cache.
            let band = band_rows(Layout::new((h, w), self.stride).row);
            let conv_rows = Depthwise3x3::convolved_side(h, self.stride);
            for (planes, out_planes) in input
                .chunks_exact(c * h * w)
                .zip(output.chunks_exact_mut(o * ho * wo))
            {
                for first in (0..conv_rows).step_by(band) {
                    for (ch, out_plane) in out_planes.chunks_exact_mut(ho * wo).enumerate() {
                        let fill = first == 0 && ch == 0;
                        convolve_plane_fastest(
                            (planes, fill, (first, first + band)),
                            (h, w),
                            ch,
                            (&kernel[ch * filters..(ch + 1) * filters], bias[ch]),
                            self,
                            out_plane,
                            &mut scratch,
                        );
                    }
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Depthwise3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("Depthwise3x3 needs a concrete input shape")?;
        ensure!(shape.len() == 4 || shape.len() == 3);
        let mut out = shape.to_vec();
        let r = out.len();
        (out[r - 2], out[r - 1]) = self.output_plane(shape[r - 2], shape[r - 1]);
        out[r - 3] = self.bias.len();
        Ok(tvec!(f32::fact(out)))
    }

    as_op!();
}

/// The [`Depthwise3x3`] for `node` when it is a float NCHW (or CHW) convolution with one 3×3 filter per channel, padding 1,
/// stride 1 or 2, no dilation, a constant kernel and bias, over an input of known shape.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Depthwise3x3>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = spec.input_channels;
    let one = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&d| d == 1));
    let stride = match &spec.strides {
        None => 1,
        Some(s) if s.len() == 2 && s[0] == s[1] && (s[0] == 1 || s[0] == 2) => s[0],
        Some(_) => return Ok(None),
    };
    let padded_by_one = match &spec.padding {
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, _) => {
            before.iter().chain(after).all(|&p| p == 1) && before.len() == 2
        }
        _ => false,
    };
    let rank = match spec.data_format {
        DataFormat::NCHW => 4,
        DataFormat::CHW => 3,
        _ => return Ok(None),
    };
    if conv.q_params.is_some()
        || spec.kernel_shape.as_slice() != [3, 3]
        || !padded_by_one
        || !one(&spec.dilations)
        || conv.kernel_fmt != KernelFormat::OIHW
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let outputs = spec.output_channels;
    // Depthwise (every output reads its own channel), or full over a few channels.
    let reads = if conv.group == channels && outputs == channels {
        1
    } else if conv.group == 1 && (2..=MAX_INPUTS).contains(&channels) {
        channels
    } else {
        return Ok(None);
    };
    let x = model.outlet_fact(node.inputs[0])?;
    let concrete = x.shape.as_concrete().map(|s| s.to_vec());
    let (Some(shape), true) = (concrete, x.datum_type == f32::datum_type()) else {
        return Ok(None);
    };
    if shape.len() != rank || shape[rank - 3] != channels {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    if kernel.datum_type() != f32::datum_type()
        || kernel.shape() != [outputs, reads, 3, 3]
        || bias.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let bias = match bias.len() {
        1 => {
            let view = bias.try_as_plain_ram()?;
            let value = view.as_slice::<f32>()?[0];
            Tensor::from_shape(&[outputs], &vec![value; outputs])?
        }
        n if n == outputs => (*bias).clone().into_shape(&[outputs])?,
        _ => return Ok(None),
    };
    Ok(Some(Depthwise3x3 {
        kernel: Arc::new((*kernel).clone().into_shape(&[outputs, reads * 9])?),
        bias: Arc::new(bias),
        inputs: reads,
        stride,
        activation: Activation::Linear,
        pool: false,
    }))
}

/// The op for `node` with whatever follows it that it can fold in, and the last node it replaces.
fn fused_replacement(
    model: &TypedModel,
    node: &TypedNode,
    fuse: bool,
) -> TractResult<Option<(Depthwise3x3, usize)>> {
    let Some(mut op) = replacement(model, node)? else {
        return Ok(None);
    };
    let mut last = node;
    if !fuse {
        return Ok(Some((op, last.id)));
    }
    let format = node
        .op_as::<Conv>()
        .map(|c| c.pool_spec.data_format)
        .unwrap_or(DataFormat::NCHW);
    let channels = op.bias.len();
    let rank = model.outlet_fact(node.inputs[0])?.rank();
    let epilogue = Epilogue::after(model, node, channels, rank)?;
    if epilogue.last != node.id {
        let mut kernel = (*op.kernel).clone();
        let mut bias = (*op.bias).clone();
        {
            let mut k_view = kernel.try_as_plain_ram_mut()?;
            let k = k_view.as_slice_mut::<f32>()?;
            let mut b_view = bias.try_as_plain_ram_mut()?;
            let b = b_view.as_slice_mut::<f32>()?;
            let filters = op.inputs * 9;
            for (ch, (filter, b)) in k.chunks_exact_mut(filters).zip(b.iter_mut()).enumerate() {
                let scale = epilogue.scale_of(ch);
                filter.iter_mut().for_each(|v| *v *= scale);
                *b = epilogue.bias_of(ch, *b);
            }
        }
        op.kernel = Arc::new(kernel);
        op.bias = Arc::new(bias);
        op.activation = epilogue.activation;
        last = model.node(epilogue.last);
    }
    if let Some(next) = only_successor(model, last) {
        if is_pool_2x2(next, format) {
            op.pool = true;
            last = next;
        }
    }
    Ok(Some((op, last.id)))
}

/// Puts a [`Depthwise3x3`] in place of every convolution of `model` it can compute (decluttered, not yet
/// optimised), with the ReLU and the 2×2 max-pool that follow it folded in when `fuse`; returns how many.
pub fn rewrite(model: &mut TypedModel, fuse: bool) -> TractResult<usize> {
    replace_chains(model, |model, node| fused_replacement(model, node, fuse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::epilogue;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};
    use tract_onnx::tract_core::ops::math::Max;

    /// An input shape, a stride and the bias (none: tract's scalar zero).
    type Case = (&'static [usize], usize, Option<Vec<f32>>);

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A typed model of a source of `shape` and one tract 3×3 `Conv` of it to `o` channels in `group`s, padding 1,
    /// at `stride`, with `bias`; and the convolution's output (not yet selected).
    fn conv_3x3(
        shape: &[usize],
        (o, group): (usize, usize),
        stride: usize,
        bias: Tensor,
    ) -> (TypedModel, OutletId) {
        let c = shape[shape.len() - 3];
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("source");
        let reads = c / group;
        let kernel = model
            .add_const(
                "kernel",
                Tensor::from_shape(&[o, reads, 3, 3], &values(o * reads * 9, 3)).expect("kernel"),
            )
            .expect("kernel");
        let bias = model.add_const("bias", bias).expect("bias");
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: if shape.len() == 4 {
                    DataFormat::NCHW
                } else {
                    DataFormat::CHW
                },
                kernel_shape: tvec!(3, 3),
                padding: PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)),
                dilations: None,
                strides: Some(tvec!(stride, stride)),
                input_channels: c,
                output_channels: o,
            },
            kernel_fmt: KernelFormat::OIHW,
            group,
            q_params: None,
        };
        let y = model
            .wire_node("conv", conv, &[x, kernel, bias])
            .expect("conv")[0];
        (model, y)
    }

    /// A typed model of one tract `Conv`: the depthwise 3×3 of `shape`'s channels at `stride`.
    fn conv_model(shape: &[usize], stride: usize, bias: Option<Vec<f32>>) -> TypedModel {
        let c = shape[shape.len() - 3];
        let bias = match bias {
            Some(b) => Tensor::from_shape(&[c], &b).expect("bias"),
            None => tensor0(0.0f32),
        };
        let (mut model, y) = conv_3x3(shape, (c, c), stride, bias);
        model.select_output_outlets(&[y]).expect("output");
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Vec<f32> {
        let out = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .and_then(|p| p.run(tvec!(x.clone().into_tvalue())))
            .expect("run");
        out[0]
            .to_plain_array_view::<f32>()
            .expect("f32")
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn it_computes_what_tracts_convolution_computes_at_both_strides_and_odd_sizes() {
        let cases: [Case; 9] = [
            (&[1, 3, 8, 8], 1, Some(vec![0.5, -1.0, 2.0])),
            (&[1, 3, 8, 8], 2, None),
            (&[2, 4, 7, 5], 2, Some(vec![1.0, 0.0, -3.0, 0.25])),
            (&[1, 2, 5, 7], 1, None),
            (&[1, 2, 1, 1], 1, None),
            (&[1, 2, 1, 3], 2, Some(vec![1.0, 2.0])),
            (&[1, 2, 2, 2], 2, None),
            // As decluttered models have them: the batch of one folded away.
            (&[3, 40, 37], 1, Some(vec![0.5, -1.0, 2.0])),
            (&[3, 17, 40], 2, None),
        ];
        for (shape, stride, bias) in cases {
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 11)).expect("x");
            let reference = run(conv_model(shape, stride, bias.clone()), &x);
            let mut model = conv_model(shape, stride, bias);
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1, "{shape:?}");
            let ours = run(model, &x);
            assert_eq!(ours.len(), reference.len(), "{shape:?} stride {stride}");
            for (a, b) in ours.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{shape:?} stride {stride}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn other_convolutions_are_left_to_tract() {
        // Stride 3: not one this op computes.
        let mut model = conv_model(&[1, 2, 9, 9], 3, None);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 0);
        // A wrong channel count in the input is refused at evaluation, not read out of bounds.
        let op = Depthwise3x3 {
            kernel: Arc::new(Tensor::zero::<f32>(&[2, 9]).expect("kernel")),
            bias: Arc::new(Tensor::zero::<f32>(&[2]).expect("bias")),
            inputs: 1,
            stride: 1,
            activation: Activation::Linear,
            pool: false,
        };
        let x = Tensor::zero::<f32>(&[1, 3, 4, 4]).expect("x");
        assert!(op
            .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
            .is_err());
    }

    /// `conv_model`'s convolution, then `max(y, floor)`, then a 2×2 max-pool; with `relu_is_output`, the maximum is
    /// a model output too.
    fn conv_relu_pool_model(
        shape: &[usize],
        stride: usize,
        floor: f32,
        relu_is_output: bool,
    ) -> TypedModel {
        let mut model = conv_model(shape, stride, Some(values(shape[shape.len() - 3], 5)));
        let conv = model.output_outlets().expect("outputs")[0];
        let rank = shape.len();
        let floor = model
            .add_const(
                "floor",
                Tensor::from_shape(&vec![1; rank], &[floor]).expect("floor"),
            )
            .expect("floor");
        let relu = model
            .wire_node("relu", TypedBinOp(Box::new(Max), None), &[conv, floor])
            .expect("relu");
        let pool = MaxPool {
            pool_spec: PoolSpec {
                data_format: if rank == 4 {
                    DataFormat::NCHW
                } else {
                    DataFormat::CHW
                },
                kernel_shape: tvec!(2, 2),
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec!(2, 2)),
                input_channels: shape[rank - 3],
                output_channels: shape[rank - 3],
            },
            with_index_outputs: None,
        };
        let pooled = model.wire_node("pool", pool, &relu).expect("pool");
        let mut outputs = pooled;
        if relu_is_output {
            outputs.push(relu[0]);
        }
        model.select_output_outlets(&outputs).expect("outputs");
        model
    }

    fn run_all(model: TypedModel, x: &Tensor) -> Vec<Vec<f32>> {
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("plan");
        plan.run(tvec!(x.clone().into_tvalue()))
            .expect("run")
            .iter()
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .expect("f32")
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }

    /// The ops of `model` by name, in order.
    fn op_names(model: &TypedModel) -> Vec<String> {
        model
            .nodes
            .iter()
            .map(|n| n.op().name().to_string())
            .collect()
    }

    fn assert_close(ours: &[Vec<f32>], reference: &[Vec<f32>], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}");
        for (a, b) in ours.iter().zip(reference) {
            assert_eq!(a.len(), b.len(), "{what}");
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn a_relu_and_a_max_pool_after_the_convolution_are_folded_in() {
        let cases: [(&[usize], usize); 5] = [
            (&[1, 3, 8, 8], 1),
            (&[1, 2, 7, 9], 1),
            (&[1, 2, 9, 7], 2),
            (&[3, 10, 6], 1),
            (&[1, 2, 5, 6], 2),
        ];
        for (shape, stride) in cases {
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 2)).expect("x");
            let reference = run_all(conv_relu_pool_model(shape, stride, 0.0, false), &x);
            let mut model = conv_relu_pool_model(shape, stride, 0.0, false);
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
            let ops = op_names(&model);
            assert!(
                !ops.iter().any(|o| o == "Max" || o == "MaxPool"),
                "{shape:?}: {ops:?}"
            );
            let op = model
                .nodes
                .iter()
                .find_map(|n| n.op_as::<Depthwise3x3>())
                .expect("the op");
            assert!(op.activation == Activation::Relu && op.pool, "{shape:?}");
            assert_close(&run_all(model, &x), &reference, &format!("{shape:?}"));
            // Unfused, the same rewrite leaves both to tract.
            let mut model = conv_relu_pool_model(shape, stride, 0.0, false);
            assert_eq!(rewrite(&mut model, false).expect("rewrite"), 1);
            let ops = op_names(&model);
            assert!(ops.iter().any(|o| o == "Max") && ops.iter().any(|o| o == "MaxPool"));
            assert_close(
                &run_all(model, &x),
                &reference,
                &format!("{shape:?} unfused"),
            );
        }
    }

    #[test]
    fn what_else_reads_or_a_floor_that_is_not_zero_is_not_folded_in() {
        let shape = [1, 2, 6, 6];
        let x = Tensor::from_shape(&shape, &values(72, 9)).expect("x");
        // The ReLU's output is also a model output: the ReLU is folded in, the pool is not (it would lose it).
        let reference = run_all(conv_relu_pool_model(&shape, 1, 0.0, true), &x);
        let mut model = conv_relu_pool_model(&shape, 1, 0.0, true);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
        let op = model
            .nodes
            .iter()
            .find_map(|n| n.op_as::<Depthwise3x3>())
            .expect("the op");
        assert!(op.activation == Activation::Relu && !op.pool);
        assert!(op_names(&model).iter().any(|o| o == "MaxPool"));
        assert_close(&run_all(model, &x), &reference, "relu read twice");
        // max(y, 0.5) is not a ReLU.
        let reference = run_all(conv_relu_pool_model(&shape, 1, 0.5, false), &x);
        let mut model = conv_relu_pool_model(&shape, 1, 0.5, false);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
        let op = model
            .nodes
            .iter()
            .find_map(|n| n.op_as::<Depthwise3x3>())
            .expect("the op");
        assert!(op.activation == Activation::Linear && !op.pool);
        assert_close(&run_all(model, &x), &reference, "floor 0.5");
    }

    #[test]
    fn a_batch_norm_and_a_prelu_after_the_convolution_are_folded_in() {
        // SFace's chain: convolution, Mul and Add by per-channel constants, PRelu. Slopes of both signs; with a
        // pool after it too (a negative slope does not commute with the maximum: applied before it).
        let cases: [(&[usize], usize, bool); 6] = [
            (&[1, 3, 14, 14], 1, false),
            (&[1, 3, 14, 14], 2, false),
            (&[1, 4, 7, 7], 2, false),
            (&[3, 9, 5], 1, false),
            (&[1, 2, 9, 8], 1, true),
            (&[1, 3, 11, 10], 2, true),
        ];
        for (shape, stride, pool) in cases {
            let c = shape[shape.len() - 3];
            let build = || {
                let mut model = conv_model(shape, stride, Some(values(c, 4)));
                let conv = model.output_outlets().expect("outputs")[0];
                let slopes: Vec<f32> = (0..c).map(|i| [0.25, -0.5, 1.5][i % 3]).collect();
                let y = epilogue::tests::wire_batch_norm_prelu(&mut model, conv, &slopes);
                let y = if pool {
                    let rank = shape.len();
                    let pool = MaxPool {
                        pool_spec: PoolSpec {
                            data_format: if rank == 4 {
                                DataFormat::NCHW
                            } else {
                                DataFormat::CHW
                            },
                            kernel_shape: tvec!(2, 2),
                            padding: PaddingSpec::Valid,
                            dilations: None,
                            strides: Some(tvec!(2, 2)),
                            input_channels: c,
                            output_channels: c,
                        },
                        with_index_outputs: None,
                    };
                    model.wire_node("pool", pool, &[y]).expect("pool")[0]
                } else {
                    y
                };
                model.select_output_outlets(&[y]).expect("output");
                model
            };
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 6)).expect("x");
            let reference = run_all(build(), &x);
            let mut model = build();
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
            let ops = op_names(&model);
            assert!(
                !ops.iter()
                    .any(|o| o == "Mul" || o == "Add" || o == "ChannelPrelu" || o == "MaxPool"),
                "{shape:?}: {ops:?}"
            );
            let op = model
                .nodes
                .iter()
                .find_map(|n| n.op_as::<Depthwise3x3>())
                .expect("the op");
            assert!(matches!(op.activation, Activation::Prelu(_)) && op.pool == pool);
            assert_close(
                &run_all(model, &x),
                &reference,
                &format!("{shape:?} stride {stride}"),
            );
        }
    }

    /// A typed model of one full tract `Conv` (group 1): `shape`'s few channels to `o`, 3×3, padding 1, at
    /// `stride`, then (with `bn_prelu`) SFace's batch norm and PRelu.
    fn full_conv_model(shape: &[usize], o: usize, stride: usize, bn_prelu: bool) -> TypedModel {
        let bias = Tensor::from_shape(&[o], &values(o, 8)).expect("bias");
        let (mut model, mut y) = conv_3x3(shape, (o, 1), stride, bias);
        if bn_prelu {
            let slopes: Vec<f32> = (0..o).map(|i| [0.25, -0.5, 1.5][i % 3]).collect();
            y = epilogue::tests::wire_batch_norm_prelu(&mut model, y, &slopes);
        }
        model.select_output_outlets(&[y]).expect("output");
        model
    }

    #[test]
    fn a_full_convolution_over_a_few_channels_is_computed_as_tract_computes_it() {
        // SFace's and YuNet's first layers: RGB to a few channels, at both strides, odd sizes, a batch of two.
        let cases: [(&[usize], usize, usize, bool); 9] = [
            // Several bands of rows, each computed for every output channel in turn.
            (&[1, 3, 130, 40], 4, 1, true),
            (&[1, 3, 200, 61], 3, 2, false),
            (&[1, 3, 16, 16], 8, 1, true),
            (&[1, 3, 15, 17], 5, 2, false),
            (&[2, 2, 9, 7], 3, 1, true),
            (&[2, 4, 6, 9], 6, 2, true),
            (&[3, 40, 37], 4, 1, false),
            (&[1, 3, 1, 1], 2, 2, false),
            (&[1, 3, 2, 3], 3, 1, true),
        ];
        for (shape, o, stride, bn_prelu) in cases {
            let what = format!("{shape:?} -> {o} stride {stride}");
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 12)).expect("x");
            let reference = run_all(full_conv_model(shape, o, stride, bn_prelu), &x);
            let mut model = full_conv_model(shape, o, stride, bn_prelu);
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1, "{what}");
            let ops = op_names(&model);
            assert!(ops.iter().any(|o| o == "Conv3x3"), "{what}: {ops:?}");
            assert!(
                !ops.iter()
                    .any(|o| o == "Conv" || o == "ChannelPrelu" || o == "Mul" || o == "Add"),
                "{what}: {ops:?}"
            );
            assert_close(&run_all(model, &x), &reference, &what);
        }
        // Five input channels, or a grouped convolution that is not depthwise: left to tract.
        let mut model = full_conv_model(&[1, 5, 8, 8], 4, 1, false);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 0);
        // A lying input: another channel count than the kernel's is an error.
        let op = Depthwise3x3 {
            kernel: Arc::new(Tensor::zero::<f32>(&[2, 27]).expect("kernel")),
            bias: Arc::new(Tensor::zero::<f32>(&[2]).expect("bias")),
            inputs: 3,
            stride: 1,
            activation: Activation::Linear,
            pool: false,
        };
        for shape in [&[1, 2, 4, 4][..], &[1, 4, 4, 4]] {
            let x = Tensor::zero::<f32>(shape).expect("x");
            assert!(op
                .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
                .is_err());
        }
    }
}
