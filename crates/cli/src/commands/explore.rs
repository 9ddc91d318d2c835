//! `image explore IMAGE [--json]`: where an image's size comes from, as the daemon analysed
//! it (`GET /berth/images/{name}/explore`). The human view is `docker history` meeting
//! `dive --ci`: the layers with their instructions, sizes and changes, the biggest files and
//! directories, the wasted bytes with a hint for each, and the efficiency. `--json` prints
//! the daemon's answer as it came.

use berth_api::Client;
use berth_api::client::explore::{ExploreWaste, ImageExplore};
use clap::Args;

use super::Res;
use crate::format::{align, ellipsis, human_size};
use crate::output::out;

/// How many rows each list shows in the human view.
const SHOWN: usize = 10;

#[cfg_attr(doc, doc = "`image explore`.")]
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Print the analysis as JSON
    #[arg(long = "json")]
    pub json: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Image.
    pub image: String,
}

/// `image explore`.
pub async fn explore(c: &Client, a: ExploreArgs) -> Res {
    if a.json {
        let mut b = c.image_explore_raw(&a.image).await?.to_vec();
        if b.last() != Some(&b'\n') {
            b.push(b'\n');
        }
        out(&String::from_utf8_lossy(&b));
        return Ok(());
    }
    let r = c.image_explore(&a.image).await?;
    out(&render(&r, a.no_trunc));
    Ok(())
}

fn size(n: u64) -> String {
    human_size(n as f64)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "0%".to_owned() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// The human view of an analysis.
pub fn render(r: &ImageExplore, no_trunc: bool) -> String {
    let cut = |s: &str, n: usize| if no_trunc { s.to_owned() } else { ellipsis(s, n) };
    let mut o = String::new();
    let name = r.repo_tags.first().cloned().unwrap_or_else(|| "<none>".to_owned());
    let id = r.id.strip_prefix("sha256:").unwrap_or(&r.id);
    o.push_str(&format!("Image: {name} ({})\n", if no_trunc { id } else { &id[..id.len().min(12)] }));
    o.push_str(&format!(
        "Size: {} in the image, {} in its layers; wasted: {} ({}); efficiency: {:.1}%\n\n",
        size(r.size),
        size(r.layers_size),
        size(r.wasted_bytes),
        percent(r.wasted_bytes, r.layers_size),
        r.efficiency * 100.0
    ));

    let mut lines = vec!["LAYER\tSIZE\tADDED\tMODIFIED\tDELETED\tINSTRUCTION".to_owned()];
    for l in &r.layers {
        let instr = l.instruction.replace(['\t', '\n'], " ");
        let instr = if instr.is_empty() { "<none>".to_owned() } else { cut(&instr, 60) };
        if l.empty_layer {
            lines.push(format!("{}\t0B\t-\t-\t-\t{instr}", l.index));
        } else {
            lines.push(format!("{}\t{}\t{}\t{}\t{}\t{instr}", l.index, size(l.size), l.added, l.modified, l.deleted));
        }
    }
    o.push_str(&align(&lines));

    for (title, kind) in [("Biggest files", "file"), ("Biggest directories", "dir")] {
        // Empty files and directories say nothing about where the bytes are.
        let items: Vec<_> = r.biggest.iter().filter(|b| b.kind == kind && b.size > 0).collect();
        if items.is_empty() {
            continue;
        }
        o.push_str(&format!("\n{title}:\n"));
        let mut lines = vec!["SIZE\tLAYER\tPATH".to_owned()];
        for b in items.iter().take(SHOWN) {
            lines.push(format!("{}\t{}\t{}", size(b.size), b.layer, b.path));
        }
        o.push_str(&align(&lines));
    }

    if r.wasted.is_empty() {
        o.push_str("\nNo wasted bytes: no layer overwrites or deletes what a lower layer wrote.\n");
        return o;
    }
    o.push_str(&format!(
        "\nWasted bytes ({}, {} of the layers):\n",
        size(r.wasted_bytes),
        percent(r.wasted_bytes, r.layers_size)
    ));
    let shown: Vec<&ExploreWaste> =
        if no_trunc { r.wasted.iter().collect() } else { r.wasted.iter().take(SHOWN).collect() };
    let mut lines = vec!["SIZE\tFILES\tLAYER\tBY\tHOW\tPATH".to_owned()];
    for w in &shown {
        lines.push(format!("{}\t{}\t{}\t{}\t{}\t{}", size(w.size), w.files, w.layer, w.by, w.how, w.path));
    }
    o.push_str(&align(&lines));
    let rest = r.wasted.len() - shown.len();
    if rest > 0 {
        let bytes: u64 = r.wasted[shown.len()..].iter().map(|w| w.size).sum();
        o.push_str(&format!("… and {rest} more ({}); --no-trunc shows them all\n", size(bytes)));
    }
    o.push_str("\nHints:\n");
    let mut seen: Vec<&str> = Vec::new();
    for w in &shown {
        if !seen.contains(&w.hint.as_str()) {
            seen.push(&w.hint);
            o.push_str(&format!("  - {}\n", w.hint));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::client::explore::{ExploreBiggest, ExploreLayer};

    #[test]
    fn the_view_shows_layers_biggest_waste_and_hints() {
        let r = ImageExplore {
            id: "sha256:0123456789abcdef".into(),
            repo_tags: vec!["waste:1".into()],
            size: 1000,
            layers_size: 3000,
            wasted_bytes: 2000,
            efficiency: 1000.0 / 3000.0,
            layers: vec![
                ExploreLayer {
                    index: 0,
                    instruction: "RUN apt-get update".into(),
                    size: 3000,
                    added: 3,
                    ..Default::default()
                },
                ExploreLayer { index: 1, instruction: "CMD [\"sh\"]".into(), empty_layer: true, ..Default::default() },
                ExploreLayer {
                    index: 2,
                    instruction: "RUN rm -rf /var/lib/apt/lists".into(),
                    deleted: 1,
                    ..Default::default()
                },
            ],
            biggest: vec![
                ExploreBiggest { path: "/bin/x".into(), size: 1000, kind: "file".into(), layer: 0 },
                ExploreBiggest { path: "/bin".into(), size: 1000, kind: "dir".into(), layer: 0 },
            ],
            wasted: vec![ExploreWaste {
                path: "/var/lib/apt/lists".into(),
                size: 2000,
                files: 2,
                layer: 0,
                by: 2,
                how: "deleted".into(),
                hint: "`RUN apt-get update` left the apt package lists".into(),
            }],
        };
        let s = render(&r, false);
        assert!(s.starts_with("Image: waste:1 (0123456789ab)\n"), "{s}");
        assert!(s.contains("wasted: 2kB (66.7%); efficiency: 33.3%"), "{s}");
        assert!(s.contains("LAYER     SIZE      ADDED     MODIFIED   DELETED   INSTRUCTION\n"), "{s}");
        assert!(s.contains("1         0B        -         -          -         CMD [\"sh\"]\n"), "{s}");
        assert!(s.contains("Biggest files:\nSIZE      LAYER     PATH\n1kB       0         /bin/x\n"), "{s}");
        assert!(s.contains("2kB       2         0         2         deleted   /var/lib/apt/lists\n"), "{s}");
        assert!(s.contains("Hints:\n  - `RUN apt-get update` left the apt package lists\n"), "{s}");
    }
}
