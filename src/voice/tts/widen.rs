//! Rewrites the Piper decoder's narrow one-dimensional convolutions (HiFi-GAN's residual blocks at 32 and 64
//! channels, its output layer) as two-dimensional ones, one row tall, before tract parses the graph. tract 0.23
//! runs a two-dimensional convolution with few input taps (input channels × kernel ≤ 576) and long rows as its
//! "direct spatial" convolution: a filter along the row, four output channels at a time, with the padding read in
//! place. A one-dimensional convolution instead becomes a lazy im2col feeding a matrix product, each behind an
//! explicit copy of its padded input; for these shapes (32 output channels, 120 000 samples) that path was 14–20 %
//! of the decoder slower (profile in docs/BENCHMARKS.md). The arithmetic is the same: the audio matches to
//! rounding (test in `piper_decoder`).
//!
//! Each rewritten `Conv` is wrapped as `Unsqueeze(axis 2) → Conv [O, I, 1, K] → Squeeze(axis 2)`; tract folds the
//! squeeze of one into the unsqueeze of the next. The unit axis gets a dilation of 2, which changes nothing (the
//! kernel is one tall) but keeps tract's axis clean-up from removing the unit axis again, which it does only for
//! an axis of dilation 1.

use tract_onnx::pb::{
    attribute_proto::AttributeType, AttributeProto, ModelProto, NodeProto, TensorProto,
};

/// tract 0.23's ceiling on input channels × kernel taps for its direct spatial convolution (`Conv::can_direct_spatial`,
/// on machines without Apple's AMX). Wider convolutions keep the matrix product, which wins for them.
const DIRECT_SPATIAL_MAX_TAPS: i64 = 576;
const INT64: i32 = 7;

/// Rewrites every eligible `Conv` of `model` (one-dimensional, constant weights, one group, a kernel of at least two
/// taps and at most [`DIRECT_SPATIAL_MAX_TAPS`] inputs × taps) and returns how many it rewrote.
pub fn widen_narrow_convolutions(model: &mut ModelProto) -> usize {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty())
        .map(|o| o.version)
        .unwrap_or(0);
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    let axis_input = "jarvis_widen_axis".to_string();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut added: Vec<TensorProto> = Vec::new();
    let mut rewritten = 0;
    for node in std::mem::take(&mut graph.node) {
        let weight = (node.op_type == "Conv" && node.input.len() >= 2 && node.output.len() == 1)
            .then(|| graph.initializer.iter().find(|t| t.name == node.input[1]))
            .flatten()
            .filter(|w| eligible(&node, w));
        let Some(weight) = weight else {
            nodes.push(node);
            continue;
        };
        let mut wide_weight = weight.clone();
        wide_weight.name = format!("{}_jarvis_wide", weight.name);
        wide_weight.dims.insert(2, 1);
        let (x, y) = (node.input[0].clone(), node.output[0].clone());
        let (x_wide, y_wide) = (format!("{y}_jarvis_x_wide"), format!("{y}_jarvis_y_wide"));
        let axis_step = |op: &str, input: String, output: String| {
            let mut step = NodeProto {
                name: format!("{}_jarvis_{}", node.name, op.to_lowercase()),
                op_type: op.to_string(),
                input: vec![input],
                output: vec![output],
                ..Default::default()
            };
            // Opset 13 moved the axes from an attribute to an input.
            if opset >= 13 {
                step.input.push(axis_input.clone());
            } else {
                step.attribute.push(ints("axes", vec![2]));
            }
            step
        };
        let mut conv = node.clone();
        conv.input[0] = x_wide.clone();
        conv.input[1] = wide_weight.name.clone();
        conv.output[0] = y_wide.clone();
        for attribute in &mut conv.attribute {
            let widened = match (attribute.name.as_str(), attribute.ints.as_slice()) {
                ("kernel_shape" | "strides", [k]) => vec![1, *k],
                ("dilations", [d]) => vec![2, *d],
                ("pads", [begin, end]) => vec![0, *begin, 0, *end],
                _ => continue,
            };
            attribute.ints = widened;
        }
        if !conv.attribute.iter().any(|a| a.name == "dilations") {
            conv.attribute.push(ints("dilations", vec![2, 1]));
        }
        nodes.push(axis_step("Unsqueeze", x, x_wide));
        nodes.push(conv);
        nodes.push(axis_step("Squeeze", y_wide, y));
        added.push(wide_weight);
        rewritten += 1;
    }
    graph.node = nodes;
    if rewritten > 0 {
        if opset >= 13 {
            added.push(TensorProto {
                name: axis_input,
                dims: vec![1],
                data_type: INT64,
                int64_data: vec![2],
                ..Default::default()
            });
        }
        graph.initializer.extend(added);
    }
    rewritten
}

fn eligible(node: &NodeProto, weight: &TensorProto) -> bool {
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let [_, inputs, taps] = weight.dims[..] else {
        return false;
    };
    let one_group = attribute("group").is_none_or(|a| a.i == 1);
    let explicit_padding = attribute("auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
    let one_dimensional = ["kernel_shape", "strides", "dilations"]
        .iter()
        .all(|name| attribute(name).is_none_or(|a| a.ints.len() == 1))
        && attribute("pads").is_none_or(|a| a.ints.len() == 2);
    one_group
        && explicit_padding
        && one_dimensional
        && taps >= 2
        && inputs * taps <= DIRECT_SPATIAL_MAX_TAPS
}

fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, weight: &str, group: i64) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: "Conv".into(),
            input: vec!["x".into(), weight.into()],
            output: vec![format!("{name}_out")],
            attribute: vec![
                ints("kernel_shape", vec![7]),
                ints("dilations", vec![3]),
                ints("pads", vec![9, 9]),
                ints("strides", vec![1]),
                AttributeProto {
                    name: "group".into(),
                    r#type: AttributeType::Int as i32,
                    i: group,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn weight(name: &str, dims: Vec<i64>) -> TensorProto {
        let count = dims.iter().product::<i64>() as usize;
        TensorProto {
            name: name.into(),
            dims,
            data_type: 1,
            float_data: vec![0.5; count],
            ..Default::default()
        }
    }

    #[test]
    fn only_narrow_one_group_convolutions_are_widened() {
        let mut model = ModelProto {
            opset_import: vec![tract_onnx::pb::OperatorSetIdProto {
                domain: String::new(),
                version: 15,
            }],
            graph: Some(tract_onnx::pb::GraphProto {
                node: vec![
                    conv("narrow", "w_narrow", 1),
                    conv("wide", "w_wide", 1),
                    conv("grouped", "w_narrow", 2),
                ],
                initializer: vec![
                    weight("w_narrow", vec![32, 32, 7]),
                    weight("w_wide", vec![384, 192, 5]),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(widen_narrow_convolutions(&mut model), 1);
        let graph = model.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Unsqueeze", "Conv", "Squeeze", "Conv", "Conv"]);
        let widened = &graph.node[1];
        let attr = |name: &str| {
            widened
                .attribute
                .iter()
                .find(|a| a.name == name)
                .unwrap()
                .ints
                .clone()
        };
        assert_eq!(attr("kernel_shape"), [1, 7]);
        assert_eq!(attr("dilations"), [2, 3]);
        assert_eq!(attr("pads"), [0, 9, 0, 9]);
        assert_eq!(
            graph.node[2].output,
            ["narrow_out"],
            "the squeeze gives the original output its name"
        );
        let wide_weight = graph
            .initializer
            .iter()
            .find(|t| t.name == widened.input[1])
            .unwrap();
        assert_eq!(wide_weight.dims, [32, 32, 1, 7]);
        assert!(graph
            .initializer
            .iter()
            .any(|t| t.name == "jarvis_widen_axis" && t.int64_data == [2]));
    }
}
