//! Project tools (tier 0): the indexed project directories from `[projects]` — list them, show a tree, read a file
//! and search text, honouring .gitignore (the `ignore` crate) and searching with ripgrep's engine (`grep`). Paths
//! are resolved inside the project: `..` and symlinks cannot leave it.

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
                let start = inside(&root, a.path.as_deref().unwrap_or("."))?;
                let depth = a.depth.unwrap_or(3).clamp(1, 8) as usize;
                tokio::task::spawn_blocking(move || tree(&root, &start, depth)).await.map_err(|e| ToolError::Failed(e.to_string()))?
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
                let file = inside(&root, &a.path)?;
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
                tokio::task::spawn_blocking(move || search(&root, &matcher, max)).await.map_err(|e| ToolError::Failed(e.to_string()))?
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

/// `rel` resolved inside `root` (after `..` and symlinks), or refused.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, ToolError> {
    let joined = root.join(rel.trim_start_matches('/'));
    let real =
        std::fs::canonicalize(&joined).map_err(|e| ToolError::NotFound(format!("{rel}: {e}")))?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(ToolError::Failed(format!("{rel} is outside the project")))
    }
}

/// `path` relative to the project root, as shown to the caller.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn tree(root: &Path, start: &Path, depth: usize) -> Result<Value, ToolError> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in WalkBuilder::new(start)
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

fn search(root: &Path, matcher: &RegexMatcher, max: usize) -> Result<Value, ToolError> {
    let mut hits: Vec<Value> = Vec::new();
    let mut searcher = SearcherBuilder::new().line_number(true).build();
    for item in WalkBuilder::new(root).build() {
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
