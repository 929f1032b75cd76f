//! 1×1 convolutions over f32 channel planes as [`Pointwise`], put in place of tract's `EinSum` (what a decluttered
//! ONNX 1×1 `Conv` becomes) by [`rewrite`] before a face model is optimised, with the batch norm, bias and
//! activation after it folded in ([`crate::vision::epilogue`]). tract runs these as matrix products whose activations it first copies into packed panels: on
//! YuNet's wide planes with few channels (16–64) the packing alone was a sixth of the model's time. The planes are
//! already in the layout a product needs (each channel's pixels contiguous), so here each block of output pixels is
//! accumulated in registers, four output channels by 24 pixels at a time, straight from the input rows: AVX2 and
//! FMA when the CPU has them (checked at run time); otherwise a plain loop over rows. The sums are the same
//! products added in another order, so results agree with tract's to rounding (tests compare both).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use crate::nn::fusion::replace_chains;
use crate::vision::epilogue::{Activation, Epilogue};

/// `y[o, p] = bias[o] + Σ_k w[o, k]·x[k, p]`, then the activation, over planes of `P` pixels: input
/// `[1, K, H, W]` or `[K, H, W]`, output `[1, O, H, W]` or `[O, H, W]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointwise {
    /// `[K, O]`: the weights transposed, so that the four of one input channel for a block of outputs are adjacent.
    weights: Arc<Tensor>,
    /// `[O]`.
    bias: Arc<Tensor>,
    /// Applied to each output value after the bias.
    activation: Activation,
    /// Whether the output has the batch axis of one (`NOHW`) or not (`OHW`).
    batch_axis: bool,
}

/// Output channels per register block.
const BLOCK_CHANNELS: usize = 4;
/// Smaller planes are left to tract: SFace's 14×14 and 7×7 ones, with 256–1024 channels, measured faster there
/// (its packed products reuse each weight over more pixels than these blocks of four channels do, and a block of
/// 64 pixels is a quarter empty on a plane of 196). Its 28×28 ones (784 pixels) measured faster here, with the
/// batch norm and PRelu after them folded in (SFace 1.0–1.8 ms less in all).
const MIN_PIXELS: usize = 784;

/// One output channel's whole row, `out = bias + Σ_k w[k]·x[k]`, as plain passes the compiler vectorises.
#[inline(always)]
fn channel_row(
    x: &[f32],
    pixels: usize,
    w: impl Iterator<Item = f32>,
    bias: f32,
    (activation, channel): (&Activation, usize),
    out: &mut [f32],
) {
    out.fill(bias);
    for (row, wk) in x.chunks_exact(pixels).zip(w) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += wk * v;
        }
    }
    activation.apply(activation.slopes(), channel, out);
}

/// The portable version: every output channel by [`channel_row`].
fn plane_generic(
    x: &[f32],
    (k, p): (usize, usize),
    op: &Pointwise,
    wt: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let o = bias.len();
    for (c, row) in out.chunks_exact_mut(p).enumerate() {
        let w = (0..k).map(|kk| wt[kk * o + c]);
        channel_row(x, p, w, bias[c], (&op.activation, c), row);
    }
}

/// A kernel for one vector width: blocks of [`BLOCK_CHANNELS`] outputs × `vectors` vectors of pixels in registers,
/// accumulated over the `k` input channels. The input rows are a plane apart, often a multiple of 4 KiB, which would
/// put every row's pixels in the same cache set and evict them between output channels; so each run of `runs`
/// blocks of pixels is first copied out of all `k` rows side by side (the plane's last block padded with zeros and
/// only its real pixels stored). The channels left over after the last whole group of four go through plain sums.
macro_rules! plane_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, lanes $lanes:literal, vectors $vectors:literal,
     runs $runs:literal, $load:ident, $store:ident, $fma:ident, $set1:ident, $max:ident, $min:ident,
     $zero:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must have the target features. `x` holds `k·p` values, `wt` `k·o`, `bias` `o`, `out` `o·p`
        /// (checked).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            x: &[f32],
            (k, p): (usize, usize),
            op: &Pointwise,
            wt: &[f32],
            bias: &[f32],
            out: &mut [f32],
        ) {
            use std::arch::x86_64::*;
            const BLOCK: usize = $lanes * $vectors;
            let o = bias.len();
            assert!(x.len() == k * p && wt.len() == k * o && out.len() == o * p);
            let groups = o / BLOCK_CHANNELS;
            let mut run = vec![0.0f32; k * BLOCK * $runs];
            let (wp, outp) = (wt.as_ptr(), out.as_mut_ptr());
            let zero = $zero();
            let relu = op.activation == Activation::Relu;
            let slopes = op.activation.slopes();
            assert!(slopes.is_none_or(|s| s.len() == o));
            // Where a block that runs past the end of the plane is stored before its pixels are copied out.
            let mut partial = [0.0f32; BLOCK_CHANNELS * BLOCK];
            let mut col = 0;
            while col < p {
                // The run's pixels, and its width in whole blocks (the last run's last block padded with zeros).
                let pixels = (p - col).min(BLOCK * $runs);
                let width = pixels.div_ceil(BLOCK) * BLOCK;
                for kk in 0..k {
                    let row = &mut run[kk * width..(kk + 1) * width];
                    row[..pixels].copy_from_slice(&x[kk * p + col..kk * p + col + pixels]);
                    row[pixels..].fill(0.0);
                }
                let rp = run.as_ptr();
                for sub in (0..width).step_by(BLOCK) {
                    let valid = (pixels - sub).min(BLOCK);
                    for g in 0..groups {
                        let c0 = g * BLOCK_CHANNELS;
                        let mut acc = [[zero; $vectors]; BLOCK_CHANNELS];
                        for (j, row) in acc.iter_mut().enumerate() {
                            *row = [$set1(bias[c0 + j]); $vectors];
                        }
                        for kk in 0..k {
                            // SAFETY: kk < k and sub + BLOCK <= width, so the loads read inside the first k·width
                            // values of `run`; c0 + 3 < o, so the weights read are inside `wt`'s row kk.
                            unsafe {
                                let xr = rp.add(kk * width + sub);
                                let mut xv = [zero; $vectors];
                                for (m, v) in xv.iter_mut().enumerate() {
                                    *v = $load(xr.add($lanes * m));
                                }
                                let wr = wp.add(kk * o + c0);
                                for (j, row) in acc.iter_mut().enumerate() {
                                    let w = $set1(*wr.add(j));
                                    for (a, v) in row.iter_mut().zip(xv) {
                                        *a = $fma(w, v, *a);
                                    }
                                }
                            }
                        }
                        for (j, row) in acc.iter().enumerate() {
                            for (m, a) in row.iter().enumerate() {
                                let v = match slopes {
                                    // a·min(y, 0) + max(y, 0): the PRelu without a compare.
                                    Some(s) => $fma($set1(s[c0 + j]), $min(*a, zero), $max(*a, zero)),
                                    None if relu => $max(*a, zero),
                                    None => *a,
                                };
                                if valid == BLOCK {
                                    // SAFETY: (c0 + j)·p + col + sub + BLOCK <= (c0 + j + 1)·p <= o·p: in `out`.
                                    unsafe { $store(outp.add((c0 + j) * p + col + sub + $lanes * m), v) };
                                } else {
                                    // SAFETY: j·BLOCK + lanes·(m + 1) <= 4·BLOCK: inside `partial`.
                                    unsafe { $store(partial.as_mut_ptr().add(j * BLOCK + $lanes * m), v) };
                                }
                            }
                        }
                        if valid < BLOCK {
                            for (j, values) in partial.chunks_exact(BLOCK).enumerate() {
                                let at = (c0 + j) * p + col + sub;
                                out[at..at + valid].copy_from_slice(&values[..valid]);
                            }
                        }
                    }
                }
                col += pixels;
            }
            // The channels after the last whole group, every pixel.
            for c in groups * BLOCK_CHANNELS..o {
                let w = (0..k).map(|kk| wt[kk * o + c]);
                channel_row(x, p, w, bias[c], (&op.activation, c), &mut out[c * p..(c + 1) * p]);
            }
        }
    };
}

plane_kernel!(
    /// AVX2 and FMA: four channels × 24 pixels in twelve of the sixteen registers; runs of 48 pixels.
    plane_avx2, "avx2,fma", lanes 8, vectors 3, runs 2,
    _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_max_ps, _mm256_min_ps,
    _mm256_setzero_ps
);

plane_kernel!(
    /// AVX-512: four channels × 64 pixels in sixteen of the thirty-two registers; runs of 128 pixels.
    plane_avx512, "avx512f", lanes 16, vectors 4, runs 2,
    _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_max_ps, _mm512_min_ps,
    _mm512_setzero_ps
);

impl Op for Pointwise {
    fn name(&self) -> StaticName {
        "Pointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let shape = self.weights.shape();
        Ok(vec![format!(
            "{} -> {} channels{}",
            shape[0],
            shape[1],
            self.activation.describe()
        )])
    }

    op_as_typed_op!();
}

impl Pointwise {
    /// `(K, O)`.
    fn channels(&self) -> (usize, usize) {
        let shape = self.weights.shape();
        (shape[0], shape[1])
    }

    fn output_shape(&self, input: &[usize]) -> TractResult<TVec<usize>> {
        let (k, o) = self.channels();
        let (channels, h, w) = match *input {
            [1, c, h, w] | [c, h, w] => (c, h, w),
            _ => bail!("Pointwise wants [1, C, H, W] or [C, H, W], got {input:?}"),
        };
        ensure!(channels == k, "Pointwise for {k} channels over {input:?}");
        Ok(if self.batch_axis {
            tvec!(1, o, h, w)
        } else {
            tvec!(o, h, w)
        })
    }
}

impl EvalOp for Pointwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Pointwise takes one input");
        let x = &inputs[0];
        let out_shape = self.output_shape(x.shape())?;
        let (k, o) = self.channels();
        let p: usize = out_shape[out_shape.len() - 2..].iter().product();
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        ensure!(
            input.len() == k * p,
            "Pointwise over {} values for {:?}",
            input.len(),
            x.shape()
        );
        let w_view = self.weights.try_as_plain_ram()?;
        let wt = w_view.as_slice::<f32>()?;
        let b_view = self.bias.try_as_plain_ram()?;
        let bias = b_view.as_slice::<f32>()?;
        ensure!(
            wt.len() == k * o && bias.len() == o,
            "Pointwise's own tensors disagree"
        );
        if o * p == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: both kernels
        // write each output channel's `p` values (whole blocks, then the pixel tail, then the channel tail).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        #[cfg(target_arch = "x86_64")]
        {
            if crate::nn::simd::avx512() {
                // SAFETY: this CPU has AVX-512F (`simd::avx512` checks it); the lengths were checked above.
                unsafe { plane_avx512(input, (k, p), self, wt, bias, output) };
                return Ok(tvec!(out.into_tvalue()));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: this CPU has AVX2 and FMA (checked just above); the lengths were checked above.
                unsafe { plane_avx2(input, (k, p), self, wt, bias, output) };
                return Ok(tvec!(out.into_tvalue()));
            }
        }
        plane_generic(input, (k, p), self, wt, bias, output);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Pointwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("Pointwise needs a concrete input shape")?;
        Ok(tvec!(f32::fact(self.output_shape(shape)?)))
    }

    as_op!();
}

/// The einsum forms of a 1×1 convolution in a decluttered ONNX model: with or without the batch axis of one, in
/// and out.
const FORMS: [&str; 4] = [
    "NIHW,OI->NOHW",
    "NIHW,OI->OHW",
    "IHW,OI->NOHW",
    "IHW,OI->OHW",
];

/// The op for `node` when it is a float 1×1 convolution [`Pointwise`] computes, with the batch norm, bias and
/// activation that follow it folded in; and the last node it replaces.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(Pointwise, usize)>> {
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    let form = einsum.axes.to_string();
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || !FORMS.contains(&form.as_str())
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = x.shape.as_concrete() else {
        return Ok(None);
    };
    let Some(weights) = model.outlet_fact(node.inputs[1])?.konst.clone() else {
        return Ok(None);
    };
    let batch_in = form.starts_with('N');
    if x.datum_type != f32::datum_type()
        || weights.datum_type() != f32::datum_type()
        || weights.rank() != 2
        || shape.len() != if batch_in { 4 } else { 3 }
        || (batch_in && shape[0] != 1)
        || shape[shape.len() - 3] != weights.shape()[1]
    {
        return Ok(None);
    }
    let (o, k) = (weights.shape()[0], weights.shape()[1]);
    let pixels: usize = shape[shape.len() - 2..].iter().product();
    if pixels < MIN_PIXELS {
        return Ok(None);
    }
    let batch_axis = form.ends_with("NOHW");
    let out_rank = if batch_axis { 4 } else { 3 };
    let epilogue = Epilogue::after(model, node, o, out_rank)?;
    let mut weights = (*weights)
        .clone()
        .permute_axes(&[1, 0])?
        .into_shape(&[k, o])?;
    {
        let mut view = weights.try_as_plain_ram_mut()?;
        for row in view.as_slice_mut::<f32>()?.chunks_exact_mut(o) {
            for (c, w) in row.iter_mut().enumerate() {
                *w *= epilogue.scale_of(c);
            }
        }
    }
    let bias: Vec<f32> = (0..o).map(|c| epilogue.bias_of(c, 0.0)).collect();
    let op = Pointwise {
        weights: Arc::new(weights),
        bias: Arc::new(Tensor::from_shape(&[o], &bias)?),
        activation: epilogue.activation,
        batch_axis,
    };
    Ok(Some((op, epilogue.last)))
}

/// Puts a [`Pointwise`] in place of every 1×1 convolution of `model` it computes (decluttered, not yet optimised),
/// with the bias and ReLU after it; returns how many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    replace_chains(model, replacement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::epilogue;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::math::{Add, Max};

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A 1×1 convolution as a decluttered ONNX model has it: `form` over `shape` to `o` channels, then (with
    /// `bias_and_relu`) a per-channel bias `Add` and a ReLU.
    fn einsum_model(form: &str, shape: &[usize], o: usize, bias_and_relu: bool) -> TypedModel {
        let k = shape[shape.len() - 3];
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("source");
        let w = model
            .add_const(
                "w",
                Tensor::from_shape(&[o, k], &values(o * k, 3)).expect("w"),
            )
            .expect("w");
        let einsum = EinSum {
            axes: form.parse().expect("form"),
            operating_dt: f32::datum_type(),
            q_params: None,
        };
        let mut y = model.wire_node("conv", einsum, &[x, w]).expect("einsum");
        if bias_and_relu {
            let rank = model.outlet_fact(y[0]).expect("fact").rank();
            let mut bias_shape = vec![1; rank];
            bias_shape[rank - 3] = o;
            let b = model
                .add_const(
                    "b",
                    Tensor::from_shape(&bias_shape, &values(o, 7)).expect("b"),
                )
                .expect("b");
            y = model
                .wire_node("bias", TypedBinOp(Box::new(Add), None), &[y[0], b])
                .expect("add");
            let zero = model
                .add_const(
                    "zero",
                    Tensor::from_shape(&vec![1; rank], &[0.0f32]).expect("0"),
                )
                .expect("0");
            y = model
                .wire_node("relu", TypedBinOp(Box::new(Max), None), &[y[0], zero])
                .expect("relu");
        }
        model.select_output_outlets(&y).expect("output");
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Tensor {
        let out = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .and_then(|p| p.run(tvec!(x.clone().into_tvalue())))
            .expect("run");
        out[0].clone().into_tensor()
    }

    fn assert_close(ours: &Tensor, reference: &Tensor, what: &str) {
        assert_eq!(ours.shape(), reference.shape(), "{what}");
        let a = ours.to_plain_array_view::<f32>().expect("f32");
        let b = reference.to_plain_array_view::<f32>().expect("f32");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn it_computes_what_tracts_einsum_computes_with_the_bias_and_relu_folded_in() {
        // Channel counts and plane sizes (from the smallest this op takes) with and without leftovers after the
        // blocks of four channels and of 24 or 64 pixels.
        let cases: [(&str, &[usize], usize); 6] = [
            ("NIHW,OI->NOHW", &[1, 5, 32, 33], 6),
            ("NIHW,OI->OHW", &[1, 16, 32, 32], 4),
            ("IHW,OI->NOHW", &[3, 40, 30], 8),
            ("IHW,OI->OHW", &[16, 33, 40], 32),
            ("IHW,OI->OHW", &[2, 1, 1100], 3),
            ("NIHW,OI->NOHW", &[1, 1, 3, 350], 1),
        ];
        for (form, shape, o) in cases {
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 1)).expect("x");
            for fused in [false, true] {
                let what = format!("{form} {shape:?} -> {o}, bias and relu {fused}");
                let reference = run(einsum_model(form, shape, o, fused), &x);
                let mut model = einsum_model(form, shape, o, fused);
                assert_eq!(rewrite(&mut model).expect("rewrite"), 1, "{what}");
                let op = model
                    .nodes
                    .iter()
                    .find_map(|n| n.op_as::<Pointwise>())
                    .expect("the op");
                assert_eq!(op.activation == Activation::Relu, fused, "{what}");
                assert_eq!(
                    model.nodes.len(),
                    2,
                    "{what}: only the source and the op are left"
                );
                assert_close(&run(model, &x), &reference, &what);
            }
        }
    }

    type Kernel = unsafe fn(&[f32], (usize, usize), &Pointwise, &[f32], &[f32], &mut [f32]);

    #[test]
    fn the_portable_kernel_and_the_vector_ones_agree_with_the_definition() {
        let (k, o, p) = (7, 10, 61);
        let slopes: Vec<f32> = (0..o).map(|c| [0.25, -0.5][c % 2]).collect();
        for activation in [
            Activation::Linear,
            Activation::Relu,
            Activation::Prelu(Arc::new(Tensor::from_shape(&[o], &slopes).expect("a"))),
        ] {
            kernels_agree_with_the_definition((k, o, p), activation);
        }
    }

    fn kernels_agree_with_the_definition((k, o, p): (usize, usize, usize), activation: Activation) {
        let op = Pointwise {
            weights: Arc::new(Tensor::from_shape(&[k, o], &values(k * o, 2)).expect("w")),
            bias: Arc::new(Tensor::from_shape(&[o], &values(o, 4)).expect("b")),
            activation: activation.clone(),
            batch_axis: false,
        };
        let x = values(k * p, 9);
        let wt = values(k * o, 2);
        let bias = values(o, 4);
        // The definition, with the activation, over `p` pixels of `x`.
        let definition = |x: &[f32], p: usize| -> Vec<f32> {
            (0..o * p)
                .map(|i| {
                    let (c, px) = (i / p, i % p);
                    let v = bias[c]
                        + (0..k)
                            .map(|kk| wt[kk * o + c] * x[kk * p + px])
                            .sum::<f32>();
                    match &activation {
                        Activation::Linear => v,
                        Activation::Relu => v.max(0.0),
                        Activation::Prelu(_) if v < 0.0 => v * [0.25, -0.5][c % 2],
                        Activation::Prelu(_) => v,
                    }
                })
                .collect()
        };
        let mut plain = vec![0.0; o * p];
        plane_generic(&x, (k, p), &op, &wt, &bias, &mut plain);
        let reference = definition(&x, p);
        for (a, b) in plain.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()));
        }
        #[cfg(target_arch = "x86_64")]
        {
            let mut kernels: Vec<(&str, Kernel)> = Vec::new();
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(("avx2", plane_avx2));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(("avx512", plane_avx512));
            }
            // Plane sizes around each kernel's blocks and runs.
            for (name, kernel) in kernels {
                for p in [1, 23, 24, 61, 64, 130, 200] {
                    let x = values(k * p, 9);
                    let reference = definition(&x, p);
                    let mut vector = vec![f32::NAN; o * p];
                    // SAFETY: the CPU has the kernel's features (checked above); the lengths fit.
                    unsafe { kernel(&x, (k, p), &op, &wt, &bias, &mut vector) };
                    for (a, b) in vector.iter().zip(&reference) {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{name} over {p} pixels, {activation:?}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn what_it_cannot_compute_is_left_to_tract_and_a_lying_input_is_refused() {
        // Channels last (YuNet's heads): not this op's.
        let mut model = einsum_model("NIHW,OI->NHWO", &[1, 4, 40, 40], 3, false);
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        // A small plane: left to tract, faster there.
        let mut model = einsum_model("NIHW,OI->NOHW", &[1, 4, 20, 20], 3, false);
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        // A batch of two: not this op's either.
        let mut model = einsum_model("NIHW,OI->NOHW", &[2, 4, 40, 40], 3, false);
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        // An input with another channel count than the weights is an error, not a read out of bounds.
        let op = Pointwise {
            weights: Arc::new(Tensor::zero::<f32>(&[4, 3]).expect("w")),
            bias: Arc::new(Tensor::zero::<f32>(&[3]).expect("b")),
            activation: Activation::Linear,
            batch_axis: true,
        };
        for shape in [&[1, 5, 2, 2][..], &[2, 4, 2, 2], &[4, 4]] {
            let x = Tensor::zero::<f32>(shape).expect("x");
            assert!(op
                .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
                .is_err());
        }
    }

    #[test]
    fn a_batch_norm_and_a_prelu_after_it_are_folded_in() {
        // SFace's 1×1 convolutions over 56×56 and 112×112 planes: EinSum, Mul, Add, PRelu.
        for (form, shape, o) in [
            ("NIHW,OI->NOHW", &[1, 6, 32, 33][..], 9),
            ("IHW,OI->OHW", &[5, 40, 30][..], 4),
        ] {
            let build = || {
                let mut model = einsum_model(form, shape, o, false);
                let y = model.output_outlets().expect("outputs")[0];
                let slopes: Vec<f32> = (0..o).map(|c| [0.25, -0.5, 2.0][c % 3]).collect();
                let y = epilogue::tests::wire_batch_norm_prelu(&mut model, y, &slopes);
                model.select_output_outlets(&[y]).expect("output");
                model
            };
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 8)).expect("x");
            let reference = run(build(), &x);
            let mut model = build();
            assert_eq!(rewrite(&mut model).expect("rewrite"), 1);
            assert_eq!(
                model.nodes.len(),
                2,
                "{shape:?}: only the source and the op are left"
            );
            let op = model
                .nodes
                .iter()
                .find_map(|n| n.op_as::<Pointwise>())
                .expect("the op");
            assert!(matches!(op.activation, Activation::Prelu(_)));
            assert_close(&run(model, &x), &reference, &format!("{form} {shape:?}"));
        }
    }
}
