//! 3×3 depthwise convolutions (one filter per channel, padding 1, stride 1 or 2) as [`Depthwise3x3`], put in place
//! of tract's `Conv` by [`rewrite`] before a face model is optimised. tract has no vectorised depthwise kernel for
//! x86 and walks these convolutions tap by tap; SFace has 13 of them (four with stride 2, five times slower per
//! output than the others). YuNet's 20 are left to tract: on its larger planes this op measured slower. Here each output row is three passes over contiguous input rows, which the
//! compiler vectorises, with AVX2 when the CPU has it (checked at run time, as tract checks for its own kernels; the
//! same code without it is slower than tract's); a stride-2 convolution first splits each input row into its even
//! and odd columns so its passes are contiguous too. The sums are the same products added in another order, so
//! results agree with tract's to rounding (tests compare both).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// A depthwise 3×3 convolution over NCHW (or CHW, a batch of one) f32, zero padding of one on every side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise3x3 {
    /// `[C, 9]`: each channel's filter, row by row.
    kernel: Arc<Tensor>,
    /// `[C]`.
    bias: Arc<Tensor>,
    /// 1 or 2, along both axes.
    stride: usize,
}

impl Depthwise3x3 {
    fn output_side(side: usize, stride: usize) -> usize {
        if side == 0 {
            0
        } else {
            (side - 1) / stride + 1
        }
    }
}

/// One output row: `out[x] += k0·row[x−1] + k1·row[x] + k2·row[x+1]`, the row padded with zeros.
#[inline(always)]
fn add_row_stride1(out: &mut [f32], row: &[f32], k: [f32; 3]) {
    let n = row.len();
    let [k0, k1, k2] = k;
    if n == 1 {
        out[0] += k1 * row[0];
        return;
    }
    out[0] += k1 * row[0] + k2 * row[1];
    for (o, ((a, b), c)) in out[1..n - 1]
        .iter_mut()
        .zip(row[..n - 2].iter().zip(&row[1..n - 1]).zip(&row[2..]))
    {
        *o += k0 * a + k1 * b + k2 * c;
    }
    out[n - 1] += k0 * row[n - 2] + k1 * row[n - 1];
}

/// One output row at stride 2 from a row split into `even` (columns 0, 2, …) and `odd` (1, 3, …):
/// `out[x] += k0·odd[x−1] + k1·even[x] + k2·odd[x]`.
#[inline(always)]
fn add_row_stride2(out: &mut [f32], even: &[f32], odd: &[f32], k: [f32; 3]) {
    let [k0, k1, k2] = k;
    let (wo, no) = (out.len(), odd.len());
    out[0] += k1 * even[0] + if no > 0 { k2 * odd[0] } else { 0.0 };
    let interior = wo.min(no);
    if interior > 1 {
        for (o, ((a, b), c)) in out[1..interior].iter_mut().zip(
            odd[..interior - 1]
                .iter()
                .zip(&even[1..interior])
                .zip(&odd[1..interior]),
        ) {
            *o += k0 * a + k1 * b + k2 * c;
        }
    }
    if wo > no && wo > 1 {
        out[wo - 1] += k0 * odd[no - 1] + k1 * even[wo - 1];
    }
}

/// One channel's plane.
#[inline(always)]
fn convolve_plane(
    plane: &[f32],
    (h, w): (usize, usize),
    k: &[f32],
    bias: f32,
    stride: usize,
    out: &mut [f32],
    split: &mut Vec<f32>,
) {
    let (ho, wo) = (
        Depthwise3x3::output_side(h, stride),
        Depthwise3x3::output_side(w, stride),
    );
    out.fill(bias);
    let (ne, no) = (w.div_ceil(2), w / 2);
    if stride == 2 {
        split.clear();
        for row in plane.chunks_exact(w) {
            split.extend(row.iter().step_by(2));
            split.extend(row.iter().skip(1).step_by(2));
        }
    }
    for (oy, orow) in out.chunks_exact_mut(wo).enumerate().take(ho) {
        for ky in 0..3 {
            let Some(iy) = (oy * stride + ky).checked_sub(1).filter(|&iy| iy < h) else {
                continue;
            };
            let taps = [k[ky * 3], k[ky * 3 + 1], k[ky * 3 + 2]];
            if stride == 1 {
                add_row_stride1(orow, &plane[iy * w..(iy + 1) * w], taps);
            } else {
                let row = &split[iy * w..(iy + 1) * w];
                add_row_stride2(orow, &row[..ne], &row[ne..ne + no], taps);
            }
        }
    }
}

/// [`convolve_plane`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn convolve_plane_avx2(
    plane: &[f32],
    hw: (usize, usize),
    k: &[f32],
    bias: f32,
    stride: usize,
    out: &mut [f32],
    split: &mut Vec<f32>,
) {
    convolve_plane(plane, hw, k, bias, stride, out, split)
}

/// [`convolve_plane`] with the widest vectors this CPU has.
fn convolve_plane_fastest(
    plane: &[f32],
    hw: (usize, usize),
    k: &[f32],
    bias: f32,
    stride: usize,
    out: &mut [f32],
    split: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the function only needs AVX2 and FMA, and this CPU has both (checked just above).
        return unsafe { convolve_plane_avx2(plane, hw, k, bias, stride, out, split) };
    }
    convolve_plane(plane, hw, k, bias, stride, out, split)
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        "Depthwise3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("stride {}", self.stride)])
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
        ensure!(
            kernel.len() == c * 9 && bias.len() == c,
            "Depthwise3x3 for {} channels over {shape:?}",
            bias.len()
        );
        let (ho, wo) = (
            Self::output_side(h, self.stride),
            Self::output_side(w, self.stride),
        );
        let out_shape = if shape.len() == 4 {
            vec![n, c, ho, wo]
        } else {
            vec![c, ho, wo]
        };
        let mut out = Tensor::zero::<f32>(&out_shape)?;
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        let mut split = Vec::with_capacity(if self.stride == 2 { h * w } else { 0 });
        for (i, (plane, out_plane)) in input
            .chunks_exact(h * w)
            .zip(output.chunks_exact_mut(ho * wo))
            .enumerate()
        {
            let ch = i % c;
            convolve_plane_fastest(
                plane,
                (h, w),
                &kernel[ch * 9..ch * 9 + 9],
                bias[ch],
                self.stride,
                out_plane,
                &mut split,
            );
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
        out[r - 2] = Self::output_side(shape[r - 2], self.stride);
        out[r - 1] = Self::output_side(shape[r - 1], self.stride);
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
        || conv.group != channels
        || spec.output_channels != channels
        || conv.kernel_fmt != KernelFormat::OIHW
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
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
        || kernel.shape() != [channels, 1, 3, 3]
        || bias.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let bias = match bias.len() {
        1 => {
            let view = bias.try_as_plain_ram()?;
            let value = view.as_slice::<f32>()?[0];
            Tensor::from_shape(&[channels], &vec![value; channels])?
        }
        n if n == channels => (*bias).clone().into_shape(&[channels])?,
        _ => return Ok(None),
    };
    Ok(Some(Depthwise3x3 {
        kernel: Arc::new((*kernel).clone().into_shape(&[channels, 9])?),
        bias: Arc::new(bias),
        stride,
    }))
}

/// Puts a [`Depthwise3x3`] in place of every convolution of `model` it can compute (decluttered, not yet
/// optimised); returns how many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut found = Vec::new();
    for id in model.eval_order()? {
        if let Some(op) = replacement(model, model.node(id))? {
            found.push((id, op));
        }
    }
    for (id, op) in &found {
        let node = model.node(*id);
        let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0]], op.clone())?;
        patch.apply(model)?;
    }
    if !found.is_empty() {
        *model = std::mem::take(model).into_compact()?;
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;

    /// An input shape, a stride and the bias (none: tract's scalar zero).
    type Case = (&'static [usize], usize, Option<Vec<f32>>);

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A typed model of one tract `Conv`: the depthwise 3×3 of `shape`'s channels at `stride`.
    fn conv_model(shape: &[usize], stride: usize, bias: Option<Vec<f32>>) -> TypedModel {
        let c = shape[shape.len() - 3];
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("source");
        let kernel = model
            .add_const(
                "kernel",
                Tensor::from_shape(&[c, 1, 3, 3], &values(c * 9, 3)).expect("kernel"),
            )
            .expect("kernel");
        let bias = model
            .add_const(
                "bias",
                match bias {
                    Some(b) => Tensor::from_shape(&[c], &b).expect("bias"),
                    None => tensor0(0.0f32),
                },
            )
            .expect("bias");
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
                output_channels: c,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        };
        let y = model
            .wire_node("conv", conv, &[x, kernel, bias])
            .expect("conv");
        model.select_output_outlets(&y).expect("output");
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
            assert_eq!(rewrite(&mut model).expect("rewrite"), 1, "{shape:?}");
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
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        // A wrong channel count in the input is refused at evaluation, not read out of bounds.
        let op = Depthwise3x3 {
            kernel: Arc::new(Tensor::zero::<f32>(&[2, 9]).expect("kernel")),
            bias: Arc::new(Tensor::zero::<f32>(&[2]).expect("bias")),
            stride: 1,
        };
        let x = Tensor::zero::<f32>(&[1, 3, 4, 4]).expect("x");
        assert!(op
            .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
            .is_err());
    }
}
