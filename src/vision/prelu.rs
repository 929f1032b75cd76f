//! ONNX `PRelu` as one pass over its input ([`ChannelPrelu`]), registered into tract's ONNX parser by
//! [`register`]. tract lowers PRelu to a multiply, a compare and a select over whole tensors; SFace has 27 of them
//! after its convolutions, and that arithmetic was a fifth of its time. With a constant f32 slope (SFace's, one per
//! channel), the op scales the negative values in place, channel by channel, bit for bit what tract's lowering gives
//! (`x < 0 ? a·x : x`); anything else (a slope computed by the graph, another element type) is wired as
//! `max(x, 0) + a·min(x, 0)`, the same function up to the sign of a zero.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::expandable::{expand, Expansion};

/// Makes `onnx` parse every `PRelu` node as [`PreluExpansion`].
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register
        .insert("PRelu", |_, _| Ok((expand(PreluExpansion), vec![])));
}

/// PRelu with a constant slope, broadcast against the input as ONNX does (unidirectionally); the slope is held at
/// the input's rank. Evaluated in place when the plan hands over the only reference to its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelPrelu {
    slope: Arc<Tensor>,
}

impl ChannelPrelu {
    /// The slope as a per-channel vector when it is one (shape `[1, C, 1, …]` against an input with C channels).
    fn per_channel<'a>(
        slope: &'a [f32],
        slope_shape: &[usize],
        shape: &[usize],
    ) -> Option<&'a [f32]> {
        let channels = *shape.get(1)?;
        let fits = slope_shape.len() == shape.len()
            && slope_shape[1] == channels
            && slope_shape
                .iter()
                .enumerate()
                .all(|(i, &d)| i == 1 || d == 1);
        fits.then_some(slope)
    }
}

impl ChannelPrelu {
    /// The slope as one value per channel for an input of `rank` whose channels (`channels` of them) are at axis
    /// `rank − 3`, when it is that or one value for all.
    pub(crate) fn channel_slopes(&self, channels: usize, rank: usize) -> Option<Vec<f32>> {
        let view = self.slope.try_as_plain_ram().ok()?;
        let slope = view.as_slice::<f32>().ok()?;
        let shape = self.slope.shape();
        if slope.len() == 1 {
            return Some(vec![slope[0]; channels]);
        }
        let channel_axis = rank.checked_sub(3)?;
        let fits = shape.len() == rank
            && shape
                .iter()
                .enumerate()
                .all(|(axis, &d)| d == 1 || (axis == channel_axis && d == channels));
        (fits && slope.len() == channels).then(|| slope.to_vec())
    }
}

impl Op for ChannelPrelu {
    fn name(&self) -> StaticName {
        "ChannelPrelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelPrelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "ChannelPrelu takes one input");
        let mut x = inputs.remove(0).into_tensor();
        let shape = x.shape().to_vec();
        let slope_view = self.slope.try_as_plain_ram()?;
        let slope = slope_view.as_slice::<f32>()?;
        // A select, not a branch: the compiler vectorises it, and a face's activations are negative about half
        // the time, which a branch mispredicts (13 ms of SFace's time as a branch, 2 ms as a select).
        let prelu = |v: &mut f32, a: f32| *v = if *v < 0.0 { *v * a } else { *v };
        if slope.len() == 1 {
            let a = slope[0];
            let mut view = x.try_as_plain_ram_mut()?;
            view.as_slice_mut::<f32>()?
                .iter_mut()
                .for_each(|v| prelu(v, a));
        } else if let Some(per_channel) = Self::per_channel(slope, self.slope.shape(), &shape) {
            let inner: usize = shape[2..].iter().product();
            let mut view = x.try_as_plain_ram_mut()?;
            let data = view.as_slice_mut::<f32>()?;
            if inner > 0 {
                for (row, chunk) in data.chunks_exact_mut(inner).enumerate() {
                    let a = per_channel[row % per_channel.len()];
                    chunk.iter_mut().for_each(|v| prelu(v, a));
                }
            }
        } else {
            let slope = self.slope.to_plain_array_view::<f32>()?;
            let slope = slope.broadcast(shape.as_slice()).with_context(|| {
                format!("PRelu slope {:?} against {:?}", self.slope.shape(), shape)
            })?;
            let mut data = x.to_plain_array_view_mut::<f32>()?;
            data.zip_mut_with(&slope, |v, &a| prelu(v, a));
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

impl TypedOp for ChannelPrelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// The parsed `PRelu` node; [`Expansion::wire`] picks [`ChannelPrelu`] or the generic arithmetic.
#[derive(Debug, Clone)]
pub struct PreluExpansion;

impl Expansion for PreluExpansion {
    fn name(&self) -> StaticName {
        "PRelu".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let (x, slope) = (inputs[0], inputs[1]);
        let x_fact = model.outlet_fact(x)?.clone();
        let slope_fact = model.outlet_fact(slope)?.clone();
        let rank = x_fact.rank();
        ensure!(
            slope_fact.rank() <= rank,
            "PRelu slope of rank {} against an input of rank {rank}",
            slope_fact.rank()
        );
        if let (Some(konst), true) = (
            slope_fact.konst.as_ref(),
            x_fact.datum_type == f32::datum_type(),
        ) {
            let mut a = konst.cast_to::<f32>()?.into_owned();
            while a.rank() < rank {
                a.insert_axis(0)?;
            }
            for (axis, (&d, dim)) in a.shape().iter().zip(x_fact.shape.iter()).enumerate() {
                if let Ok(n) = dim.to_usize() {
                    ensure!(
                        d == 1 || d == n,
                        "PRelu slope {:?} does not broadcast to the input's axis {axis} ({n})",
                        konst.shape()
                    );
                }
            }
            return model.wire_node(name, ChannelPrelu { slope: Arc::new(a) }, &[x]);
        }
        // max(x, 0) + a·min(x, 0), the slope brought to the input's rank.
        let mut a = slope;
        while model.outlet_fact(a)?.rank() < rank {
            let r = model.outlet_fact(a)?.rank();
            a = model.wire_node(format!("{name}.slope-axis-{r}"), AxisOp::Add(0), &[a])?[0];
        }
        let zero = tensor0(0.0f32)
            .cast_to_dt(x_fact.datum_type)?
            .into_owned()
            .broadcast_into_rank(rank)?;
        let zero = model.add_const(format!("{name}.zero"), zero)?;
        use tract_onnx::tract_hir::ops::math;
        let positive = model.wire_node(format!("{name}.max"), math::max(), &[x, zero])?[0];
        let negative = model.wire_node(format!("{name}.min"), math::min(), &[x, zero])?[0];
        let scaled = model.wire_node(format!("{name}.mul"), math::mul(), &[negative, a])?[0];
        model.wire_node(name, math::add(), &[positive, scaled])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PRelu as ONNX defines it, element by element.
    fn reference(x: &[f32], a: impl Fn(usize) -> f32) -> Vec<f32> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| if v < 0.0 { v * a(i) } else { v })
            .collect()
    }

    fn input(len: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 201) as f32 / 10.0 - 10.0)
            .collect();
        v[0] = -0.0;
        v[1] = f32::NEG_INFINITY;
        v[2] = f32::NAN;
        v
    }

    fn run(op: ChannelPrelu, shape: &[usize], x: &[f32]) -> Vec<f32> {
        let out = op
            .eval(
                &EvalContext::out_of_plan(),
                tvec!(Tensor::from_shape(shape, x).expect("shape").into_tvalue()),
            )
            .expect("eval");
        out[0]
            .to_plain_array_view::<f32>()
            .expect("f32")
            .iter()
            .copied()
            .collect()
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn per_channel_scalar_and_broadcast_slopes_give_prelu_bit_for_bit() {
        let shape = [2, 3, 4, 5];
        let x = input(120);
        let channel = [0.25f32, -1.5, 3.0];
        let per_channel = ChannelPrelu {
            slope: Arc::new(Tensor::from_shape(&[1, 3, 1, 1], &channel).expect("slope")),
        };
        let want = reference(&x, |i| channel[(i / 20) % 3]);
        assert!(same(&run(per_channel, &shape, &x), &want));

        let scalar = ChannelPrelu {
            slope: Arc::new(Tensor::from_shape(&[1, 1, 1, 1], &[0.1f32]).expect("slope")),
        };
        assert!(same(&run(scalar, &shape, &x), &reference(&x, |_| 0.1)));

        // One slope per column: the generic broadcast.
        let column = [0.5f32, 2.0, -0.5, 0.0, 1.0];
        let columns = ChannelPrelu {
            slope: Arc::new(Tensor::from_shape(&[1, 1, 1, 5], &column).expect("slope")),
        };
        assert!(same(
            &run(columns, &shape, &x),
            &reference(&x, |i| column[i % 5])
        ));
    }

    #[test]
    fn a_slope_that_does_not_broadcast_is_an_error_not_a_wrong_answer() {
        let bad = ChannelPrelu {
            slope: Arc::new(Tensor::from_shape(&[1, 4, 1, 1], &[1.0f32; 4]).expect("slope")),
        };
        let x = Tensor::from_shape(&[1, 3, 2, 2], &[1.0f32; 12]).expect("x");
        assert!(bad
            .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
            .is_err());
    }

    /// A parsed model: `PRelu` with a constant slope becomes one `ChannelPrelu`, with a computed slope the
    /// arithmetic; both answer as tract's own PRelu does.
    #[test]
    fn the_parser_wires_the_fast_op_for_a_constant_slope_and_arithmetic_otherwise() {
        use tract_onnx::pb::{
            tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
            TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
        };
        let value = |name: &str, dims: &[i64]| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| tensor_shape_proto::Dimension {
                                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = |constant: bool| {
            let mut graph = GraphProto {
                name: "prelu".into(),
                node: vec![NodeProto {
                    op_type: "PRelu".into(),
                    input: vec!["x".into(), "a".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                input: vec![value("x", &[1, 3, 2, 2])],
                output: vec![value("y", &[1, 3, 2, 2])],
                ..Default::default()
            };
            if constant {
                graph.initializer.push(TensorProto {
                    name: "a".into(),
                    dims: vec![3, 1, 1],
                    data_type: 1,
                    float_data: vec![0.5, -2.0, 0.0],
                    ..Default::default()
                });
            } else {
                graph.input.push(value("a", &[3, 1, 1]));
            }
            ModelProto {
                ir_version: 7,
                opset_import: vec![OperatorSetIdProto {
                    domain: String::new(),
                    version: 13,
                }],
                graph: Some(graph),
                ..Default::default()
            }
        };
        let x: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
        let slope = [0.5f32, -2.0, 0.0];
        let want = reference(&x, |i| slope[i / 4]);
        let mut onnx = tract_onnx::onnx();
        register(&mut onnx);
        for constant in [true, false] {
            let plan = onnx
                .model_for_proto_model(&model(constant))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .expect("plan");
            let fast = plan
                .model()
                .nodes()
                .iter()
                .filter(|n| n.op().name() == "ChannelPrelu")
                .count();
            assert_eq!(fast, usize::from(constant));
            let mut inputs = tvec!(Tensor::from_shape(&[1, 3, 2, 2], &x)
                .expect("x")
                .into_tvalue());
            if !constant {
                inputs.push(
                    Tensor::from_shape(&[3, 1, 1], &slope)
                        .expect("a")
                        .into_tvalue(),
                );
            }
            let out = plan.run(inputs).expect("run");
            let got: Vec<f32> = out[0]
                .to_plain_array_view::<f32>()
                .expect("f32")
                .iter()
                .copied()
                .collect();
            assert!(same(&got, &want), "constant {constant}: {got:?}");
        }
    }
}
