//! The inputs of the tools whose work lives outside this module (the
//! report, sync, git and markdown exchange), beside the operations' own.
//! Like every input here, each carries its JSON Schema: the MCP face lists
//! it, the CLI fills it from flags, and a field is added in one place.

use schemars::JsonSchema;
use serde::Deserialize;

/// No arguments at all.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

/// What `get_project_status` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Default json.
    #[schemars(extend("enum" = ["json", "markdown"]))]
    pub format: Option<String>,
}

/// What `sync` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    // status: the worker's health; now: run one round and report it (the tool says so).
    #[schemars(extend("enum" = ["status", "now"]))]
    pub action: String,
}

/// What `import_git_history` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitImport {
    /// Repository path; default the one serve runs in.
    #[schemars(length(max = 1024))]
    pub repo_path: Option<String>,
}

/// What `import_markdown` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkdownImport {
    // A legacy .project_status.md file (the tool says so).
    #[schemars(length(max = 1024))]
    pub path: String,
}

/// What `export_markdown` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkdownExport {
    // Output file; default .project_status.md at the repository root (the tool says so).
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
}
