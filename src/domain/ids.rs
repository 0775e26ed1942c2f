//! Record ids: random (time-ordered) for records without a natural key,
//! UUID v5 over a fixed namespace for those with one, so that two replicas
//! creating "the same" thing offline end up with one record.

use uuid::Uuid;

/// The namespace of every deterministic id Waymark mints. Never change it:
/// ids derived from it are stored on every replica and the hub.
pub(crate) const NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3e0c_9b7d_4c55_8e21_57a9_0d3b_c4e2);

fn derived(kind: &str, key: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{kind}:{key}").as_bytes()).to_string()
}

/// A fresh id for a record without a natural key.
pub(crate) fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// A vendor's id, from its case-folded, trimmed name.
pub fn vendor(name: &str) -> String {
    derived("vendor", &super::vendor_key(name))
}

/// A deployment imported from git, from its commit hash.
pub fn deployment_from_commit(commit: &str) -> String {
    derived("deployment", &commit.trim().to_lowercase())
}

/// A work item imported from a branch name.
pub fn work_item_from_branch(branch: &str) -> String {
    derived("branch", branch.trim())
}

/// A work item imported from a legacy `.project_status.md`, from its
/// stable key (its parent's key, type, title and created time).
pub(crate) fn legacy_work_item(key: &str) -> String {
    derived("legacy_work_item", key)
}

/// A deployment imported from a legacy status file whose commit hash is
/// unusable, from its time, PR number and the raw hash text.
pub(crate) fn legacy_deployment(key: &str) -> String {
    derived("legacy_deployment", key)
}

/// An enhancement imported from a legacy status file, from its title (and
/// its rank among entries of the same title).
pub(crate) fn legacy_enhancement(key: &str) -> String {
    derived("legacy_enhancement", key)
}

/// A session work item imported from a prompt file, from its path relative
/// to the imported directory.
pub(crate) fn session_prompt(relative_path: &str) -> String {
    derived("session_prompt", relative_path)
}

/// A dependency edge, from its endpoints and type.
pub fn dependency(source: &str, target: &str, dependency_type: &str) -> String {
    derived("dependency", &format!("{source}:{target}:{dependency_type}"))
}

/// A deployment's link to a vendor or a work item.
pub(crate) fn deployment_link(deployment: &str, link_type: &str, target: &str) -> String {
    derived("deployment_link", &format!("{deployment}:{link_type}:{target}"))
}

/// The one project configuration record.
pub fn configuration() -> String {
    derived("configuration", "project")
}

/// Parse a UUID given by a user, for a clear error before any lookup.
pub fn parse(field: &str, text: &str) -> crate::Result<String> {
    Uuid::parse_str(text.trim())
        .map(|u| u.to_string())
        .map_err(|_| crate::Error::invalid(field, format!("{} is not a UUID", crate::error::quote(text))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_keys_give_the_same_id_everywhere() {
        assert_eq!(vendor("EPSON"), vendor("  epson "));
        assert_ne!(vendor("EPSON"), vendor("Canon"));
        assert_eq!(deployment_from_commit("ABCDEF1"), deployment_from_commit("abcdef1"));
        assert_eq!(configuration(), configuration());
        assert_ne!(dependency("a", "b", "blocks"), dependency("b", "a", "blocks"));
    }
}
