//! What a face model's convolution ops ([`crate::vision::depthwise`], [`crate::vision::pointwise`]) do to each
//! output channel before storing it, and how the nodes after a convolution in a decluttered model are recognised
//! as such ([`Epilogue::after`]): a per-channel scale and shift (ONNX's `BatchNormalization`, which decluttering
//! leaves as a `Mul` and an `Add` of constants; a bias `Add` alone is the same thing), folded into the
//! convolution's weights and bias, then an [`Activation`] — a ReLU, or a PRelu with one slope per channel — applied
//! as each block is stored. Each was one more pass over the whole output (SFace has 17 such batch norms and 27
//! PRelus).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::{Add, Mul};

use crate::nn::fusion::{is_relu, only_successor, other_input};
use crate::vision::prelu::ChannelPrelu;

/// The function applied to each output value, after the bias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Activation {
    Linear,
    /// `max(y, 0)`.
    Relu,
    /// `y < 0 ? a·y : y`, `a` per channel: `[C]`.
    Prelu(Arc<Tensor>),
}

impl Activation {
    /// The slopes of a [`Activation::Prelu`]; none otherwise.
    pub fn slopes(&self) -> Option<&[f32]> {
        match self {
            Activation::Prelu(a) => a.try_as_plain_ram().ok()?.as_slice::<f32>().ok(),
            _ => None,
        }
    }

    /// Whether it never decreases, so that it gives the same result before or after a maximum.
    pub fn is_monotone(&self) -> bool {
        match self {
            Activation::Linear | Activation::Relu => true,
            Activation::Prelu(_) => self.slopes().is_some_and(|a| a.iter().all(|&s| s >= 0.0)),
        }
    }

    /// Applies it in place to `row`, values of channel `channel`; `slopes` is [`Activation::slopes`], looked up
    /// once by the caller.
    #[inline(always)]
    pub fn apply(&self, slopes: Option<&[f32]>, channel: usize, row: &mut [f32]) {
        match (self, slopes) {
            (Activation::Linear, _) => {}
            (Activation::Relu, _) => row.iter_mut().for_each(|v| *v = v.max(0.0)),
            (Activation::Prelu(_), Some(a)) => {
                let a = a[channel];
                // A select the compiler vectorises, as in `ChannelPrelu`.
                row.iter_mut()
                    .for_each(|v| *v = if *v < 0.0 { *v * a } else { *v });
            }
            (Activation::Prelu(_), None) => {}
        }
    }

    /// How an op's `info` names it: empty, `, relu` or `, prelu`.
    pub fn describe(&self) -> &'static str {
        match self {
            Activation::Linear => "",
            Activation::Relu => ", relu",
            Activation::Prelu(_) => ", prelu",
        }
    }
}

/// What follows a convolution that its op can do instead: `y·scale + shift`, then the activation; `last` is the
/// last node of the chain (the convolution itself when nothing follows that fits).
#[derive(Debug, Clone)]
pub struct Epilogue {
    /// `[C]`, when a `Mul` by a constant per-channel scale follows.
    pub scale: Option<Vec<f32>>,
    /// `[C]`, when an `Add` of a constant per-channel shift follows (after the scale, if any).
    pub shift: Option<Vec<f32>>,
    pub activation: Activation,
    pub last: usize,
}

impl Epilogue {
    /// The longest chain `Mul? Add? (ReLU | PRelu)?` after `node`, each of them the only reader of the one before
    /// and none of them a model output (but the last), for a convolution output of `channels` channels at axis
    /// `rank − 3` (NCHW or CHW).
    pub fn after(
        model: &TypedModel,
        node: &TypedNode,
        channels: usize,
        rank: usize,
    ) -> TractResult<Epilogue> {
        let mut epilogue = Epilogue {
            scale: None,
            shift: None,
            activation: Activation::Linear,
            last: node.id,
        };
        let mut last = node;
        if let Some(next) = only_successor(model, last) {
            epilogue.scale = per_channel(model, next, last.id, (channels, rank), true)?;
            if epilogue.scale.is_some() {
                last = next;
            }
        }
        if let Some(next) = only_successor(model, last) {
            epilogue.shift = per_channel(model, next, last.id, (channels, rank), false)?;
            if epilogue.shift.is_some() {
                last = next;
            }
        }
        if let Some(next) = only_successor(model, last) {
            if is_relu(model, next, OutletId::new(last.id, 0))? {
                epilogue.activation = Activation::Relu;
                last = next;
            } else if let Some(a) = next
                .op_as::<ChannelPrelu>()
                .and_then(|p| p.channel_slopes(channels, rank))
            {
                epilogue.activation =
                    Activation::Prelu(Arc::new(Tensor::from_shape(&[channels], &a)?));
                last = next;
            }
        }
        epilogue.last = last.id;
        Ok(epilogue)
    }

    /// The scale folded into one channel's weights: each multiplied by it.
    pub fn scale_of(&self, channel: usize) -> f32 {
        self.scale.as_ref().map_or(1.0, |s| s[channel])
    }

    /// The channel's bias after the scale and shift: `bias·scale + shift`.
    pub fn bias_of(&self, channel: usize, bias: f32) -> f32 {
        bias * self.scale_of(channel) + self.shift.as_ref().map_or(0.0, |t| t[channel])
    }
}

/// When `node` multiplies (`multiply`) or adds the output of node `input` by a constant that is one value per channel (`channels`
/// at axis `rank − 3`, broadcast over the pixels) or one value for all, and the result has `input`'s shape: that
/// constant as `[channels]`.
fn per_channel(
    model: &TypedModel,
    node: &TypedNode,
    input: usize,
    (channels, rank): (usize, usize),
    multiply: bool,
) -> TractResult<Option<Vec<f32>>> {
    let input = OutletId::new(input, 0);
    let Some(op) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let kind = if multiply {
        op.0.is::<Mul>()
    } else {
        op.0.is::<Add>()
    };
    let Some(other) = other_input(node, input).filter(|_| kind) else {
        return Ok(None);
    };
    let Some(konst) = model.outlet_fact(other)?.konst.clone() else {
        return Ok(None);
    };
    if konst.datum_type() != f32::datum_type()
        || konst.rank() > rank
        || rank < 3
        || model.outlet_fact(OutletId::new(node.id, 0))?.shape != model.outlet_fact(input)?.shape
    {
        return Ok(None);
    }
    // Axes aligned from the right, as broadcasting aligns them.
    let channel_axis = rank - 3;
    let offset = rank - konst.rank();
    let fits = konst
        .shape()
        .iter()
        .enumerate()
        .all(|(axis, &d)| d == 1 || (axis + offset == channel_axis && d == channels));
    if !fits {
        return Ok(None);
    }
    let view = konst.try_as_plain_ram()?;
    let values = view.as_slice::<f32>()?;
    Ok(match values.len() {
        n if n == channels => Some(values.to_vec()),
        1 => Some(vec![values[0]; channels]),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vision::prelu::PreluExpansion;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_hir::ops::expandable::Expansion;

    /// Wires after `x` (NCHW or CHW) what a decluttered ONNX batch norm and PRelu are: `x·scale + shift` with
    /// per-channel constants at the input's rank, then a PRelu of `slopes`, as the ONNX parser wires it.
    pub(crate) fn wire_batch_norm_prelu(
        model: &mut TypedModel,
        x: OutletId,
        slopes: &[f32],
    ) -> OutletId {
        let rank = model.outlet_fact(x).expect("x").rank();
        let c = slopes.len();
        let scale: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.75).collect();
        let mut shift_shape = vec![1; rank];
        shift_shape[rank - 3] = c;
        let shift: Vec<f32> = (0..c).map(|i| i as f32 - 1.0).collect();
        let scale = model
            .add_const(
                "scale",
                Tensor::from_shape(&shift_shape, &scale).expect("scale"),
            )
            .expect("scale");
        let shift = model
            .add_const(
                "shift",
                Tensor::from_shape(&shift_shape, &shift).expect("shift"),
            )
            .expect("shift");
        let y = model
            .wire_node("bn.mul", TypedBinOp(Box::new(Mul), None), &[x, scale])
            .expect("mul")[0];
        let y = model
            .wire_node("bn.add", TypedBinOp(Box::new(Add), None), &[shift, y])
            .expect("add")[0];
        let a = model
            .add_const(
                "slope",
                Tensor::from_shape(&[c, 1, 1], slopes).expect("slope"),
            )
            .expect("slope");
        PreluExpansion.wire("prelu", model, &[y, a]).expect("prelu")[0]
    }

    #[test]
    fn a_constant_that_is_not_one_per_channel_is_not_taken() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 2, 3, 3])).expect("x");
        // One value per row, not per channel.
        let rows = model
            .add_const(
                "rows",
                Tensor::from_shape(&[1, 1, 3, 1], &[1.0f32, 2.0, 3.0]).expect("rows"),
            )
            .expect("rows");
        let y = model
            .wire_node("mul", TypedBinOp(Box::new(Mul), None), &[x, rows])
            .expect("mul");
        model.select_output_outlets(&y).expect("output");
        let epilogue = Epilogue::after(&model, model.node(x.node), 2, 4).expect("after");
        assert_eq!(epilogue.last, x.node);
        assert!(epilogue.scale.is_none() && epilogue.shift.is_none());
        assert_eq!(epilogue.activation, Activation::Linear);
    }

    #[test]
    fn the_whole_chain_is_taken_and_folds_to_one_affine_map() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3, 2, 2])).expect("x");
        let y = wire_batch_norm_prelu(&mut model, x, &[0.1, -0.2, 0.3]);
        model.select_output_outlets(&[y]).expect("output");
        let epilogue = Epilogue::after(&model, model.node(x.node), 3, 4).expect("after");
        assert_eq!(epilogue.last, y.node);
        assert_eq!(epilogue.scale.as_deref(), Some(&[0.5f32, 1.25, 2.0][..]));
        assert_eq!(epilogue.shift.as_deref(), Some(&[-1.0f32, 0.0, 1.0][..]));
        assert_eq!(epilogue.activation.slopes(), Some(&[0.1f32, -0.2, 0.3][..]));
        assert!(!epilogue.activation.is_monotone());
        // bias·scale + shift.
        assert_eq!(epilogue.bias_of(1, 2.0), 2.5);
    }
}
