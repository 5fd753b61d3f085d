//! Records the git commit the binary is built from, for `--version` and the
//! `version` metric tag. A container build passes `SUMA_AUTH_GIT_SHA` (it has
//! no `.git`); otherwise `git` is asked; "unknown" when neither answers.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SUMA_AUTH_GIT_SHA");
    let sha = std::env::var("SUMA_AUTH_GIT_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves: HEAD itself, and the branch file it points to.
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(reference) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{}", reference.trim());
        }
    }
    println!("cargo:rustc-env=SUMA_AUTH_GIT_SHA={}", sha.trim());
}
