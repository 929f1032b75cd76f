//! Project tools (tier 0): the indexed project directories from `[projects]` — list them, show a tree, read a file
//! and search text, honouring .gitignore (the `ignore` crate) and searching with ripgrep's engine (`grep`). Paths
//! are resolved inside the project: `..` and symlinks cannot leave it. What they resolve to is then refused, never
//! listed and never searched when it is inside `.git/` or `.ssh/`, looks like a key or secrets file
//! ([`is_key_file`]), or is Jarvis's own data ([`crate::files::protected_by`]).

use std::path::{Path, PathBuf};

use grep_regex::RegexMatcher;
use grep_searcher::sinks::UTF8;
use grep_searcher::SearcherBuilder;
use ignore::WalkBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};

const MAX_TREE_ENTRIES: usize = 2000;
const MAX_FILE_BYTES: u64 = 512 * 1024;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<super::cluster::NoArgs>::new(
        "list_projects",
        Tier::Read,
        "List the indexed project directories (code and config repositories Jarvis may browse) by name.",
        |_, _| "List projects".into(),
        |ctx, _| {
            Box::pin(async move {
                let list: Vec<Value> = ctx.settings.projects.iter().map(|(n, p)| json!({"name": n, "path": p})).collect();
                Ok(json!({ "projects": list }))
            })
        },
    ));
    r.register(TypedTool::<TreeArgs>::new(
        "project_tree",
        Tier::Read,
        "The file tree of a project (or of a directory in it), honouring .gitignore; depth 1–8 (default 3).",
        |a, _| format!("Show the tree of project {}", a.project),
        |ctx, a| {
            Box::pin(async move {
                let root = project_root(&ctx, &a.project)?;
                let protected = ctx.settings.protected.clone();
                let start = inside(&root, &protected, a.path.as_deref().unwrap_or("."))?;
                let depth = a.depth.unwrap_or(3).clamp(1, 8) as usize;
                tokio::task::spawn_blocking(move || tree(&root, &protected, &start, depth)).await.map_err(|e| ToolError::Failed(e.to_string()))?
            })
        },
    ));
    r.register(TypedTool::<ReadArgs>::new(
        "read_project_file",
        Tier::Read,
        "Read a file of a project by its path relative to the project (up to 512 KiB).",
        |a, _| format!("Read {} in project {}", a.path, a.project),
        |ctx, a| {
            Box::pin(async move {
                let root = project_root(&ctx, &a.project)?;
                let file = inside(&root, &ctx.settings.protected, &a.path)?;
                let meta = std::fs::metadata(&file).map_err(|e| ToolError::NotFound(format!("{}: {e}", a.path)))?;
                if !meta.is_file() {
                    return Err(ToolError::NotFound(format!("{} is not a file", a.path)));
                }
                use std::io::Read;
                let mut buf = Vec::new();
                std::fs::File::open(&file)
                    .and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut buf))
                    .map_err(|e| ToolError::Failed(format!("{}: {e}", a.path)))?;
                Ok(json!({"project": a.project, "path": a.path, "size": meta.len(), "truncated": meta.len() > MAX_FILE_BYTES,
                          "text": String::from_utf8_lossy(&buf)}))
            })
        },
    ));
    r.register(TypedTool::<SearchArgs>::new(
        "search_project",
        Tier::Read,
        "Search a project's files for a regular expression (ripgrep's engine, .gitignore honoured): file, line number and \
         line of each match, at most max_results (default 50, up to 500).",
        |a, _| format!("Search project {} for {}", a.project, a.pattern),
        |ctx, a| {
            Box::pin(async move {
                let root = project_root(&ctx, &a.project)?;
                let matcher = RegexMatcher::new_line_matcher(&a.pattern).map_err(|e| ToolError::InvalidArguments {
                    tool: "search_project".into(),
                    field: "pattern".into(),
                    message: e.to_string(),
                })?;
                let max = a.max_results.unwrap_or(50).clamp(1, 500) as usize;
                let protected = ctx.settings.protected.clone();
                tokio::task::spawn_blocking(move || search(&root, &protected, &matcher, max)).await.map_err(|e| ToolError::Failed(e.to_string()))?
            })
        },
    ));
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeArgs {
    /// The project's name (see list_projects).
    pub project: String,
    /// A directory inside the project (default: its root).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub depth: Option<u32>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    pub project: String,
    /// The file's path relative to the project, e.g. src/main.rs.
    pub path: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    pub project: String,
    /// A regular expression (Rust regex syntax).
    pub pattern: String,
    #[serde(default)]
    pub max_results: Option<u32>,
}

fn project_root(ctx: &ToolContext, name: &str) -> Result<PathBuf, ToolError> {
    let path = ctx.settings.projects.get(name).ok_or_else(|| {
        let known: Vec<&str> = ctx.settings.projects.keys().map(String::as_str).collect();
        ToolError::NotFound(format!(
            "no project named {name}; known: {}",
            known.join(", ")
        ))
    })?;
    std::fs::canonicalize(path)
        .map_err(|e| ToolError::Failed(format!("project {name} ({}): {e}", path.display())))
}

/// `rel` resolved inside `root` (after `..` and symlinks), or refused: outside the project, or (as resolved) a
/// path the project tools never touch ([`why_refused`]).
fn inside(root: &Path, protected: &[PathBuf], rel: &str) -> Result<PathBuf, ToolError> {
    let joined = root.join(rel.trim_start_matches('/'));
    let real =
        std::fs::canonicalize(&joined).map_err(|e| ToolError::NotFound(format!("{rel}: {e}")))?;
    if !real.starts_with(root) {
        return Err(ToolError::Failed(format!("{rel} is outside the project")));
    }
    match why_refused(root, protected, &real) {
        Some(why) => Err(ToolError::Failed(format!("refused: {rel} {why}"))),
        None => Ok(real),
    }
}

/// Folders whose contents the project tools never read, list or search.
const SECRET_DIRS: [&str; 2] = [".git", ".ssh"];

/// Why the project tools must not touch `real` (canonical, inside `root`), if they must not.
fn why_refused(root: &Path, protected: &[PathBuf], real: &Path) -> Option<String> {
    if let Some(p) = crate::files::protected_by(protected, real) {
        return Some(format!(
            "is Jarvis's own data ({}: its database, secrets or config)",
            p.display()
        ));
    }
    let rel = real.strip_prefix(root).unwrap_or(real);
    let names: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    if let Some(dir) = names.iter().find(|n| SECRET_DIRS.contains(n)) {
        return Some(format!("is inside {dir}/, which project tools never read"));
    }
    match rel.file_name().and_then(|n| n.to_str()) {
        Some(name) if is_key_file(name) => Some(format!(
            "looks like a key or secrets file ({name}), which project tools never read"
        )),
        _ => None,
    }
}

/// A file name that usually holds a private key or secrets: `id_rsa*`, `id_dsa*`, `id_ecdsa*`, `id_ed25519*`,
/// `.env` and `.env.*`, and `*.pem`, `*.key`, `*.p12`, `*.pfx`, `*.kdbx` (case-insensitive).
pub fn is_key_file(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let key_prefix = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"]
        .iter()
        .any(|p| name.starts_with(p));
    let env = name == ".env" || name.starts_with(".env.");
    let extension = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ["pem", "key", "p12", "pfx", "kdbx"].contains(&ext));
    key_prefix || env || extension
}

/// A walk below `start` that never enters `.git/` or `.ssh/` and never yields a key file or Jarvis's own data.
fn walk(root: &Path, protected: &[PathBuf], start: &Path) -> WalkBuilder {
    let mut walk = WalkBuilder::new(start);
    let (root, protected) = (root.to_path_buf(), protected.to_vec());
    walk.filter_entry(move |e| why_refused(&root, &protected, e.path()).is_none());
    walk
}

/// `path` relative to the project root, as shown to the caller.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn tree(
    root: &Path,
    protected: &[PathBuf],
    start: &Path,
    depth: usize,
) -> Result<Value, ToolError> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in walk(root, protected, start)
        .max_depth(Some(depth))
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
    {
        let Ok(item) = item else { continue };
        if item.depth() == 0 {
            continue;
        }
        if entries.len() >= MAX_TREE_ENTRIES {
            truncated = true;
            break;
        }
        let rel = relative(root, item.path());
        let dir = item.file_type().is_some_and(|t| t.is_dir());
        entries.push(if dir { format!("{rel}/") } else { rel });
    }
    Ok(json!({ "entries": entries, "truncated": truncated }))
}

fn search(
    root: &Path,
    protected: &[PathBuf],
    matcher: &RegexMatcher,
    max: usize,
) -> Result<Value, ToolError> {
    let mut hits: Vec<Value> = Vec::new();
    let mut searcher = SearcherBuilder::new().line_number(true).build();
    for item in walk(root, protected, root).build() {
        if hits.len() >= max {
            break;
        }
        let Ok(item) = item else { continue };
        if !item.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = relative(root, item.path());
        let _ = searcher.search_path(
            matcher,
            item.path(),
            UTF8(|line, text| {
                hits.push(json!({"path": rel, "line": line, "text": text.trim_end()}));
                Ok(hits.len() < max)
            }),
        );
    }
    let full = hits.len() >= max;
    Ok(json!({ "matches": hits, "truncated": full }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_recognised() {
        for name in [
            "id_rsa",
            "id_rsa.pub",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "id_ed25519_sk",
            "ID_RSA",
            "server.pem",
            "tls.KEY",
            "client.p12",
            "client.pfx",
            "vault.kdbx",
            ".env",
            ".env.local",
        ] {
            assert!(is_key_file(name), "{name}");
        }
        for name in [
            "README.md",
            "keys.rs",
            "monkey",
            "pem",
            "environment",
            ".envrc",
            "id.txt",
            "key",
        ] {
            assert!(!is_key_file(name), "{name}");
        }
    }
}
