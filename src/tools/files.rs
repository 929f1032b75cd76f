//! File tools: download a URL into the configured directory (tier 1, SSRF-guarded), read a file and list a
//! directory below the allowlisted roots (tier 0), copy a file between nodes over SFTP (tier 1 into the configured
//! copy destinations, tier 2 anywhere else: the copy writes as the SSH user, root on Proxmox).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::system::executor;
use super::typed::TypedTool;
use super::{Registry, Tier, ToolError};
use crate::files::{self, FileError};
use crate::ssh::safe_remote_path;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<DownloadArgs>::new(
        "download_file",
        Tier::Routine,
        "Download a URL (http/https) into Jarvis's download directory, e.g. an ISO or a backup. Internal addresses \
         (loopback, private, link-local, cloud metadata) are refused unless the operator allowlisted them; size and \
         time are capped. Returns the saved path, size and SHA-256.",
        |a, _| format!("Download {} into the download directory", a.url),
        |ctx, a| {
            Box::pin(async move {
                let s = &ctx.settings.files;
                let done = files::download(s, &a.url, a.filename.as_deref(), a.overwrite).await.map_err(file_error)?;
                serde_json::to_value(done).map_err(|e| ToolError::Failed(e.to_string()))
            })
        },
    ));
    r.register(TypedTool::<PathArgs>::new(
        "read_file",
        Tier::Read,
        "Read a text file below the allowlisted roots (the first 1 MiB). Paths are resolved first: `..` and symlinks \
         cannot leave the roots.",
        |a, _| format!("Read {}", a.path),
        |ctx, a| {
            Box::pin(async move {
                let c = files::read_file(&ctx.settings.files, &ctx.settings.protected, &a.path).map_err(file_error)?;
                serde_json::to_value(c).map_err(|e| ToolError::Failed(e.to_string()))
            })
        },
    ));
    r.register(TypedTool::<PathArgs>::new(
        "list_dir",
        Tier::Read,
        "List a directory below the allowlisted roots: names, kinds (file/dir/symlink) and sizes.",
        |a, _| format!("List {}", a.path),
        |ctx, a| {
            Box::pin(async move {
                let entries =
                    files::list_dir(&ctx.settings.files, &ctx.settings.protected, &a.path)
                        .map_err(file_error)?;
                Ok(json!({ "path": a.path, "entries": entries }))
            })
        },
    ));
    r.register(
        TypedTool::<CopyArgs>::new(
            "copy_between_nodes",
            Tier::Confirm,
            "Copy a file from one node to another over SFTP, through Jarvis (e.g. an ISO from pve to agent1). Absolute \
             paths only. Routine into the ISO and template folders (the configured copy destinations); anywhere else \
             NEEDS THE OPERATOR'S CONFIRMATION.",
            |a, _| {
                format!(
                    "Write {}:{} (overwriting it if it exists), copied from {}:{}",
                    a.to_host, a.to_path, a.from_host, a.from_path
                )
            },
            |ctx, a| {
                Box::pin(async move {
                    let out = executor(&ctx)?
                        .copy(&a.from_host, &a.from_path, &a.to_host, &a.to_path)
                        .await
                        .map_err(|e| ToolError::Failed(e.to_string()))?;
                    if out.exit_code != 0 {
                        return Err(ToolError::Failed(format!("the copy failed: {}", out.stderr.trim())));
                    }
                    Ok(json!({"from": format!("{}:{}", a.from_host, a.from_path), "to": format!("{}:{}", a.to_host, a.to_path),
                              "duration_ms": out.duration_ms}))
                })
            },
        )
        .with_tier(|a, settings| {
            if inside_any(&a.to_path, &settings.files.copy_destinations) {
                Tier::Routine
            } else {
                Tier::Confirm
            }
        })
        .with_check(|a, _| {
            for (field, p) in [("from_path", &a.from_path), ("to_path", &a.to_path)] {
                if !safe_remote_path(p) {
                    return Err(ToolError::InvalidArguments {
                        tool: "copy_between_nodes".into(),
                        field: field.into(),
                        message: "an absolute path of letters, digits and / . _ - + @ = , : (no ..)".into(),
                    });
                }
            }
            Ok(())
        }),
    );
}

/// Whether `path` (absolute, no `..`: checked before) lies strictly inside one of `folders`, component-wise
/// (`/var/lib/vz/template/iso-evil/x` is not inside `/var/lib/vz/template/iso`).
fn inside_any(path: &str, folders: &[String]) -> bool {
    let path = std::path::Path::new(path);
    folders.iter().any(|f| {
        let folder = std::path::Path::new(f.as_str());
        path != folder && path.starts_with(folder)
    })
}

fn file_error(e: FileError) -> ToolError {
    match e {
        FileError::BadRequest(m) => ToolError::InvalidArguments {
            tool: "files".into(),
            field: "path".into(),
            message: m,
        },
        other => ToolError::Failed(other.to_string()),
    }
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadArgs {
    /// The http or https URL.
    pub url: String,
    /// File name to save as (default: the URL's last path segment).
    #[serde(default)]
    pub filename: Option<String>,
    /// Replace an existing file of that name.
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// An absolute path below one of the allowlisted roots.
    pub path: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyArgs {
    pub from_host: String,
    pub from_path: String,
    pub to_host: String,
    pub to_path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_routine_only_strictly_inside_a_destination() {
        let d: Vec<String> = crate::files::DEFAULT_COPY_DESTINATIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (path, inside) in [
            ("/var/lib/vz/template/iso/debian.iso", true),
            ("/var/lib/vz/template/cache/ct.tar.zst", true),
            ("/var/lib/vz/template/iso", false),
            ("/var/lib/vz/template/iso-evil/x", false),
            ("/root/.ssh/authorized_keys", false),
            ("/etc/cron.d/job", false),
            ("/var/lib/vz/template/isox", false),
        ] {
            assert_eq!(inside_any(path, &d), inside, "{path}");
        }
    }
}
