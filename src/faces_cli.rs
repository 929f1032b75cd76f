//! `jarvis faces …`: the face gallery of a running Jarvis, as the operator, over its side port (the engine stays
//! loaded there, so identifying a photo is quick): enrol, list, identify, work the review queue, delete.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::OperatorArgs;

#[derive(Subcommand)]
pub enum FacesCommand {
    /// Enrol photos of a person (created if new). Each photo must show that one person's face, clearly.
    Enroll { name: String, photos: Vec<PathBuf> },
    /// The people Jarvis recognises.
    List,
    /// Who is in a photo, with the scores (nothing is recorded).
    Identify { photo: PathBuf },
    /// The review queue; or work it: `assign GROUP PERSON`, `discard GROUP`, `not-this-person SIGHTING`.
    Review {
        #[command(subcommand)]
        action: Option<ReviewAction>,
    },
    /// Delete a person (name or id) and every face sample, crop and correction kept of them.
    Delete { person: String },
}

#[derive(Subcommand)]
pub enum ReviewAction {
    /// An unknown-face group is this person (created with --create if new).
    Assign {
        group: i64,
        person: String,
        #[arg(long)]
        create: bool,
    },
    /// Forget an unknown-face group.
    Discard { group: i64 },
    /// A recent match was wrong.
    NotThisPerson { sighting: i64 },
}

pub async fn run(command: FacesCommand, op: &OperatorArgs) -> anyhow::Result<()> {
    let side = Side::new(op)?;
    match command {
        FacesCommand::Enroll { name, photos } => {
            if photos.is_empty() {
                bail!("name at least one photo");
            }
            let person = match side.find(&name).await? {
                Some(p) => p,
                None => {
                    let made = side
                        .call(
                            side.post("/api/v1/faces/people")
                                .json(&json!({ "name": name })),
                        )
                        .await?;
                    println!("Added {}", made["person"]["name"].as_str().unwrap_or(&name));
                    made["person"].clone()
                }
            };
            let mut form = reqwest::multipart::Form::new();
            for p in &photos {
                let bytes =
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                let file = p.file_name().map_or_else(
                    || p.display().to_string(),
                    |f| f.to_string_lossy().into_owned(),
                );
                form = form.part(
                    "photo",
                    reqwest::multipart::Part::bytes(bytes).file_name(file),
                );
            }
            let id = person["id"].as_i64().unwrap_or_default();
            let answer = side
                .call_any(
                    side.post(&format!("/api/v1/faces/people/{id}/photos"))
                        .multipart(form),
                )
                .await?;
            let mut enrolled = 0;
            for r in answer["photos"].as_array().into_iter().flatten() {
                let ok = r["enrolled"].as_bool() == Some(true);
                enrolled += usize::from(ok);
                println!(
                    "{} {}: {}",
                    if ok { "✓" } else { "✗" },
                    r["photo"].as_str().unwrap_or("?"),
                    r["message"].as_str().unwrap_or("")
                );
            }
            let p = &answer["person"];
            println!(
                "{} now has {} face samples",
                p["name"].as_str().unwrap_or(&name),
                p["samples"]
            );
            if enrolled == 0 {
                bail!("no photo was enrolled");
            }
        }
        FacesCommand::List => {
            let answer = side.call(side.get("/api/v1/faces/people")).await?;
            let people = answer["people"].as_array().cloned().unwrap_or_default();
            if people.is_empty() {
                println!("Nobody is enrolled yet: jarvis faces enroll NAME PHOTO...");
            }
            for p in people {
                println!(
                    "{:>4}  {:<24} {:>2} samples  last seen {}",
                    p["id"],
                    p["name"].as_str().unwrap_or(""),
                    p["samples"],
                    p["last_seen"].as_str().unwrap_or("never")
                );
            }
        }
        FacesCommand::Identify { photo } => {
            let bytes = std::fs::read(&photo)
                .with_context(|| format!("cannot read {}", photo.display()))?;
            let form = reqwest::multipart::Form::new()
                .part("photo", reqwest::multipart::Part::bytes(bytes));
            let answer = side
                .call(side.post("/api/v1/faces/identify").multipart(form))
                .await?;
            let faces = answer["faces"].as_array().cloned().unwrap_or_default();
            if faces.is_empty() {
                println!("No face found in {}", photo.display());
            }
            for (i, f) in faces.iter().enumerate() {
                print!("face {} at {}: ", i + 1, f["bbox"]);
                match f["decision"].as_str() {
                    Some("known") => println!(
                        "{} (score {:.2}; next best {:.2})",
                        f["name"].as_str().unwrap_or("?"),
                        f["score"].as_f64().unwrap_or_default(),
                        f["runner_up"].as_f64().unwrap_or_default()
                    ),
                    _ => println!("unknown — {}", f["reason"].as_str().unwrap_or("")),
                }
                for c in f["candidates"].as_array().into_iter().flatten() {
                    println!(
                        "    {:<24} {:.2}{}",
                        c["name"].as_str().unwrap_or(""),
                        c["score"].as_f64().unwrap_or_default(),
                        if c["ruled_out"].as_bool() == Some(true) {
                            "  (ruled out by a correction)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(q) = f["quality_problem"].as_str() {
                    println!("    not good enough to learn from: {q}");
                }
            }
        }
        FacesCommand::Review { action: None } => {
            let q = side.call(side.get("/api/v1/faces/review")).await?;
            let unknown = q["unknown"].as_array().cloned().unwrap_or_default();
            println!("Unknown faces: {}", unknown.len());
            for g in unknown {
                println!(
                    "  group {:>4}: {} sightings ({} good) by {}, {} … {}",
                    g["group"],
                    g["sightings"],
                    g["good_crops"],
                    g["sources"]
                        .as_array()
                        .map(|s| s
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    g["first_seen"].as_str().unwrap_or(""),
                    g["last_seen"].as_str().unwrap_or("")
                );
            }
            let matches = q["recent_matches"].as_array().cloned().unwrap_or_default();
            println!("Recent matches: {}", matches.len());
            for m in matches {
                println!(
                    "  sighting {:>5}: {} ({:.2}) by {} at {}",
                    m["sighting"],
                    m["person"]["name"].as_str().unwrap_or(""),
                    m["score"].as_f64().unwrap_or_default(),
                    m["source"].as_str().unwrap_or(""),
                    m["seen"].as_str().unwrap_or("")
                );
            }
        }
        FacesCommand::Review { action: Some(a) } => {
            let (tool, args) = match a {
                ReviewAction::Assign {
                    group,
                    person,
                    create,
                } => (
                    "assign_faces",
                    json!({ "group": group, "person": person, "create_person": create }),
                ),
                ReviewAction::Discard { group } => ("discard_faces", json!({ "group": group })),
                ReviewAction::NotThisPerson { sighting } => {
                    ("not_this_person", json!({ "sighting": sighting }))
                }
            };
            let answer = side
                .call(side.post(&format!("/api/v1/tools/{tool}")).json(&args))
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer["result"])?);
        }
        FacesCommand::Delete { person } => {
            let Some(p) = side.find(&person).await? else {
                bail!("there is no person {person}");
            };
            let id = p["id"].as_i64().unwrap_or_default();
            let answer = side
                .call(
                    side.client
                        .delete(side.url(&format!("/api/v1/faces/people/{id}")))
                        .bearer_auth(&side.token),
                )
                .await?;
            println!(
                "Deleted {}: {} samples, {} corrections, {} sightings",
                answer["deleted"]["name"].as_str().unwrap_or(&person),
                answer["samples"],
                answer["corrections"],
                answer["sightings"]
            );
        }
    }
    Ok(())
}

/// The running Jarvis's side port, with the operator token.
struct Side {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Side {
    fn new(op: &OperatorArgs) -> anyhow::Result<Side> {
        Ok(Side {
            client: op.side.client()?,
            base: op.side.base().to_string(),
            token: crate::operator_token(op)?.expose().to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&self.token)
    }

    /// A person by name (ignoring case) or id.
    async fn find(&self, who: &str) -> anyhow::Result<Option<Value>> {
        let answer = self.call(self.get("/api/v1/faces/people")).await?;
        let who = who.trim().to_lowercase();
        Ok(answer["people"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["name"].as_str().map(str::to_lowercase) == Some(who.clone())
                    || who.parse::<i64>().ok() == p["id"].as_i64()
            })
            .cloned())
    }

    /// Sends; a non-2xx answer becomes its message.
    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (ok, body) = self.send(req).await?;
        if !ok {
            bail!("{}", body["message"].as_str().unwrap_or("request refused"));
        }
        Ok(body)
    }

    /// Sends; an enrolment answer with per-photo results is returned even when no photo was taken.
    async fn call_any(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (ok, body) = self.send(req).await?;
        if !ok && body.get("photos").is_none() {
            bail!("{}", body["message"].as_str().unwrap_or("request refused"));
        }
        Ok(body)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(bool, Value)> {
        let resp = req
            .send()
            .await
            .map_err(|e| crate::side_client::unreachable(&self.base, e))?;
        let ok = resp.status().is_success();
        let body: Value = resp
            .json()
            .await
            .context("Jarvis answered something that is not JSON")?;
        Ok((ok, body))
    }
}
