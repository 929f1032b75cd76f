//! The face service: the engine loaded once, put to work on photos for enrolment, identification and
//! sightings, with the gallery and the review queue in the store. A photo is decoded within its limits
//! ([`photo`]), every face found, aligned, checked against the quality gates and embedded. Work runs on blocking
//! threads, at most `threads` photos at once ([`FaceService::run`]). Changes are announced on the bus
//! (`FacesChanged`, `FaceSeen`); the gallery is read from the store for every decision, so a change made by
//! another Jarvis process counts at once.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::align;
use super::faces::{DetectorSettings, Face, FaceEngine, FaceError};
use super::gallery::{self, Added, Decision, GalleryError, GallerySettings, Index, NewSample};
use super::photo::{self, Photo, PhotoError, PhotoLimits};
use super::plural;
use super::quality::{self, QualitySettings};
use super::review::{self, Recorded, Seen};
use crate::bus::{Bus, Event};
use crate::store::Store;

/// `[faces]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSettings {
    /// The folder holding the YuNet and SFace files (`scripts/fetch-models` puts them in models/cache/).
    pub models: PathBuf,
    /// Photos analysed at once.
    pub threads: usize,
    pub detector: DetectorSettings,
    pub quality: QualitySettings,
    pub gallery: GallerySettings,
    pub photo: PhotoLimits,
}

impl Default for FaceSettings {
    fn default() -> FaceSettings {
        FaceSettings {
            models: PathBuf::from("/usr/share/jarvis/models"),
            threads: 1,
            detector: DetectorSettings::default(),
            quality: QualitySettings::default(),
            gallery: GallerySettings::default(),
            photo: PhotoLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaceServiceError {
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(transparent)]
    Engine(#[from] FaceError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error("the face engine stopped: {0}")]
    Stopped(String),
}

/// One face found in a photo, analysed.
pub struct FoundFace {
    pub face: Face,
    /// Aligned 112×112 RGB.
    pub crop: Vec<u8>,
    /// The crop as a small JPEG (what is stored).
    pub crop_jpeg: Vec<u8>,
    pub embedding: Vec<f32>,
    /// Why it may not be enrolled or learnt from, if it may not.
    pub problem: Option<quality::QualityProblem>,
}

impl FoundFace {
    /// The face's area in pixels of the photo.
    pub fn face_area(&self) -> f32 {
        self.face.bbox[2].max(0.0) * self.face.bbox[3].max(0.0)
    }
}

/// One photo's enrolment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhotoResult {
    pub photo: String,
    pub enrolled: bool,
    /// What happened, for people: "enrolled", "already known (nearly the same as a kept photo)", or why not.
    pub message: String,
}

/// An enrolment's outcome: each photo's result, and the person as they now stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enrolment {
    pub person: gallery::Person,
    pub photos: Vec<PhotoResult>,
}

/// One face identified in a photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identified {
    /// x, y, width, height in photo pixels.
    pub bbox: [f32; 4],
    #[serde(flatten)]
    pub decision: Decision,
    /// The best candidates' scores (at most five).
    pub candidates: Vec<gallery::Candidate>,
    /// Why it would not be learnt from, if it would not.
    pub quality_problem: Option<String>,
}

pub struct FaceService {
    engine: FaceEngine,
    store: Arc<Store>,
    bus: Bus,
    settings: FaceSettings,
    permits: tokio::sync::Semaphore,
}

impl FaceService {
    /// Loads both models (optimised once for their fixed shapes).
    pub fn load(
        settings: FaceSettings,
        store: Arc<Store>,
        bus: Bus,
    ) -> Result<FaceService, FaceError> {
        let engine = FaceEngine::load(&settings.models, settings.detector)?;
        Ok(FaceService {
            engine,
            store,
            bus,
            permits: tokio::sync::Semaphore::new(settings.threads.max(1)),
            settings,
        })
    }

    pub fn settings(&self) -> &FaceSettings {
        &self.settings
    }

    /// Runs `f` on a blocking thread once one of the `threads` permits is free.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&FaceService) -> T + Send + 'static,
    ) -> Result<T, FaceServiceError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| FaceServiceError::Stopped(e.to_string()))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| FaceServiceError::Stopped(e.to_string()))
    }

    /// Every face in a photo (bytes as uploaded), analysed, best detection first.
    pub fn analyse(&self, bytes: &[u8]) -> Result<Vec<FoundFace>, FaceServiceError> {
        let photo = photo::decode(bytes, &self.settings.photo)?;
        self.analyse_photo(&photo)
    }

    pub fn analyse_photo(&self, photo: &Photo) -> Result<Vec<FoundFace>, FaceServiceError> {
        let mut out = Vec::new();
        for face in self.engine.detect(photo)? {
            let Some(crop) = align::crop(photo, &face.landmarks) else {
                continue;
            };
            let embedding = self.engine.embed_crop(&crop)?;
            let problem = quality::check(&face, &crop, &self.settings.quality).err();
            let crop_jpeg = jpeg(&crop, align::SIDE as u32);
            out.push(FoundFace {
                face,
                crop,
                crop_jpeg,
                embedding,
                problem,
            });
        }
        Ok(out)
    }

    /// Enrols photos of one person (who must exist). Each photo is judged alone: it must hold exactly one face
    /// that passes the quality gates and does not look like someone else already enrolled. A refused photo
    /// changes nothing; the answer says which photo and why.
    pub fn enrol(
        &self,
        who: &str,
        photos: &[(String, Vec<u8>)],
    ) -> Result<Enrolment, FaceServiceError> {
        let person = gallery::find_person(&self.store, who)?;
        let mut results = Vec::new();
        for (name, bytes) in photos {
            let message = match self.enrol_one(&person, bytes) {
                Ok(Added::Added) | Ok(Added::Replaced) => Ok("enrolled".to_string()),
                Ok(Added::Redundant) => {
                    Ok("already known: nearly the same as a photo kept for them".to_string())
                }
                Err(why) => Err(why),
            };
            results.push(match message {
                Ok(m) => PhotoResult {
                    photo: name.clone(),
                    enrolled: m == "enrolled",
                    message: m,
                },
                Err(why) => PhotoResult {
                    photo: name.clone(),
                    enrolled: false,
                    message: why,
                },
            });
        }
        let enrolled = results.iter().filter(|r| r.enrolled).count();
        if enrolled > 0 {
            self.bus.publish(Event::FacesChanged {
                change: format!("{} enrolled for {}", plural(enrolled, "photo"), person.name),
            });
        }
        Ok(Enrolment {
            person: gallery::find_person(&self.store, &person.id.to_string())?,
            photos: results,
        })
    }

    /// One photo for `person`: what it added, or why it was refused (a sentence).
    fn enrol_one(&self, person: &gallery::Person, bytes: &[u8]) -> Result<Added, String> {
        let faces = self.analyse(bytes).map_err(|e| e.to_string())?;
        let face = match faces.as_slice() {
            [] => return Err("no face found in this photo".into()),
            [one] => one,
            many => {
                return Err(format!(
                    "{} faces in this photo: enrol from a photo of {} alone (or crop it)",
                    many.len(),
                    person.name
                ))
            }
        };
        if let Some(problem) = &face.problem {
            return Err(format!("the face cannot be enrolled: {problem}"));
        }
        let index = Index::load(&self.store).map_err(|e| e.to_string())?;
        // A face far from every photo already enrolled for this person is someone else's photo by mistake
        // (different people's faces score below 0.2 in most pairs measured; the same person's rarely do).
        if let Some(own) = index.people.iter().find(|p| p.id == person.id) {
            let nearest = own
                .samples
                .iter()
                .map(|s| super::faces::cosine(s, &face.embedding))
                .fold(f32::MIN, f32::max);
            if nearest < SOMEONE_ELSE_BELOW {
                return Err(format!(
                    "this face does not look like the {} already enrolled for {} (best score {nearest:.2}): \
                     not enrolled",
                    plural(own.samples.len(), "photo"),
                    person.name
                ));
            }
        }
        if let Decision::Known {
            person: other,
            name,
            score,
            ..
        } = index.decide(&face.embedding, &self.settings.gallery)
        {
            if other != person.id {
                return Err(format!(
                    "this face looks like {name} (score {score:.2}), not {}: not enrolled",
                    person.name
                ));
            }
        }
        let sample = NewSample {
            embedding: &face.embedding,
            crop_jpeg: &face.crop_jpeg,
            source: gallery::SampleSource::Enrolled,
            from_sighting: None,
        };
        let now = crate::time::now_ms();
        self.store
            .write(|tx| gallery::add_sample(tx, person.id, &sample, &self.settings.gallery, now))
            .map_err(|e| e.to_string())
    }

    /// Who each face in a photo is (nothing is recorded or learnt).
    pub fn identify(&self, bytes: &[u8]) -> Result<Vec<Identified>, FaceServiceError> {
        let faces = self.analyse(bytes)?;
        let index = Index::load(&self.store)?;
        Ok(faces
            .iter()
            .map(|f| {
                let mut candidates = index.candidates(&f.embedding);
                candidates.truncate(5);
                Identified {
                    bbox: f.face.bbox,
                    decision: index.decide(&f.embedding, &self.settings.gallery),
                    candidates,
                    quality_problem: f.problem.as_ref().map(ToString::to_string),
                }
            })
            .collect())
    }

    /// Records every face in a photo seen where `at` says (a camera, its track and zones): matches are learnt
    /// from when confident and good; unknown faces join the review queue.
    pub fn sighting(&self, bytes: &[u8], at: &SeenAt) -> Result<Vec<Recorded>, FaceServiceError> {
        let faces = self.analyse(bytes)?;
        self.record(&faces, at)
    }

    /// Records faces already analysed, and announces each (`FaceSeen`, which the household's presence follows).
    pub fn record(
        &self,
        faces: &[FoundFace],
        at: &SeenAt,
    ) -> Result<Vec<Recorded>, FaceServiceError> {
        let source = at.camera.as_str();
        let mut out = Vec::new();
        for f in faces {
            let index = Index::load(&self.store)?;
            let seen = Seen {
                source,
                embedding: &f.embedding,
                crop_jpeg: &f.crop_jpeg,
                good: f.problem.is_none(),
                hint: at.hint.as_deref(),
            };
            let r = review::record(
                &self.store,
                &index,
                &seen,
                &self.settings.gallery,
                crate::time::now_ms(),
            )?;
            let (person, person_id, score) = match &r.decision {
                Decision::Known {
                    name,
                    score,
                    person,
                    ..
                } => (Some(name.clone()), Some(*person), *score),
                Decision::Unknown { best, .. } => {
                    (None, None, best.as_ref().map_or(0.0, |b| b.score))
                }
            };
            self.bus.publish(Event::FaceSeen {
                source: source.to_string(),
                person,
                person_id,
                score,
                group: r.group,
                sighting: r.sighting,
                at_ms: at.at_ms.unwrap_or_else(crate::time::now_ms),
                zones: at.zones.clone(),
                track: at.track.clone(),
                frigate_event: at.frigate_event.clone(),
            });
            out.push(r);
        }
        Ok(out)
    }
}

/// Where and when faces were seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenAt {
    /// The camera's name (or where a reported photo came from).
    pub camera: String,
    /// When the picture was taken; now if not given.
    pub at_ms: Option<u64>,
    /// Zones the person's track has entered so far, in order.
    pub zones: Vec<String>,
    /// The track (a Frigate event id, an RTSP face track).
    pub track: Option<String>,
    pub frigate_event: Option<String>,
    /// Another recogniser's name for the person (Frigate's sub label), weighed by `review::second_opinion`.
    pub hint: Option<String>,
}

impl SeenAt {
    pub fn camera(name: &str) -> SeenAt {
        SeenAt {
            camera: name.to_string(),
            ..Default::default()
        }
    }
}

/// Below this cosine to every sample already enrolled for a person, a new photo is taken for someone else's.
pub const SOMEONE_ELSE_BELOW: f32 = 0.15;

/// An RGB image as a JPEG of quality 85.
pub fn jpeg(rgb: &[u8], side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    if let Err(e) =
        image::ImageEncoder::write_image(enc, rgb, side, side, image::ExtendedColorType::Rgb8)
    {
        tracing::warn!("cannot encode a face crop: {e}");
        out.clear();
    }
    out
}
