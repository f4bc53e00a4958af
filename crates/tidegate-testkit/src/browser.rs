//! Headless Chromium for the tests of tidegate's HTML pages: a page is rendered with every host unresolvable, so
//! one that needed anything from the network would show it missing.

use std::path::Path;
use std::process::Command;

/// Renders `page` in headless Chromium (Debian's `chromium`, which scripts/setup.sh installs) with every host
/// unresolvable and a throwaway profile, and returns the DOM it built. Panics with Chromium's own output when it
/// fails.
pub fn chromium_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().expect("a temporary directory for Chromium's profile");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Nothing resolves: a page that needed anything from the network would miss it.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (scripts/setup.sh installs Debian's chromium)");
    assert!(
        output.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
