//! Parses lm-sensors' JSON (`sensors -j`): chips → features → `tempN_input` readings, into labelled Celsius values.

use serde_json::Value;

use crate::cluster::model::Temperature;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("`sensors -j` output is not lm-sensors JSON: {0}")]
pub struct SensorsError(pub String);

/// Every temperature reading, labelled `chip/feature` (e.g. `coretemp-isa-0000/Package id 0`).
pub fn parse(json: &str) -> Result<Vec<Temperature>, SensorsError> {
    let v: Value = serde_json::from_str(json).map_err(|e| SensorsError(e.to_string()))?;
    let chips = v
        .as_object()
        .ok_or_else(|| SensorsError("expected an object of chips".into()))?;
    let mut out = Vec::new();
    for (chip, features) in chips {
        let Some(features) = features.as_object() else {
            continue;
        };
        for (feature, readings) in features {
            let Some(readings) = readings.as_object() else {
                continue;
            };
            let input = readings
                .iter()
                .find(|(k, _)| k.starts_with("temp") && k.ends_with("_input"))
                .and_then(|(_, v)| v.as_f64());
            if let Some(celsius) = input.filter(|c| (-50.0..200.0).contains(c)) {
                out.push(Temperature {
                    sensor: format!("{chip}/{feature}"),
                    celsius,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_nvme_temperatures() {
        let json = r#"{
          "coretemp-isa-0000": {"Adapter": "ISA adapter",
            "Package id 0": {"temp1_input": 48.000, "temp1_max": 100.000, "temp1_crit": 100.000, "temp1_crit_alarm": 0.000},
            "Core 0": {"temp2_input": 45.000, "temp2_max": 100.000}},
          "nvme-pci-0100": {"Adapter": "PCI adapter", "Composite": {"temp1_input": 38.850, "temp1_max": 81.850}},
          "acpitz-acpi-0": {"Adapter": "ACPI interface", "temp1": {"temp1_input": 27.800}},
          "nct6798-isa-0290": {"Adapter": "ISA adapter", "in0": {"in0_input": 0.816}}
        }"#;
        let t = parse(json).expect("parse");
        assert_eq!(t.len(), 4);
        assert!(t.contains(&Temperature {
            sensor: "coretemp-isa-0000/Package id 0".into(),
            celsius: 48.0
        }));
        assert!(t
            .iter()
            .any(|x| x.sensor == "nvme-pci-0100/Composite" && (x.celsius - 38.85).abs() < 1e-9));
        assert!(parse("not json").is_err());
        assert!(parse("[1,2]").is_err());
    }
}
