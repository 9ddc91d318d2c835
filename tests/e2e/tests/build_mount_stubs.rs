//! A RUN step's layer holds what the step changed and nothing the runtime made for its
//! mounts: no empty `/etc/hosts` or `/etc/resolv.conf`, no `RUN --mount` target with its
//! parents, no directory copied up only to hold such a stub. A step that changes nothing
//! adds no layer. What a step really writes next to a stub stays.

use berth_e2e::{Daemon, ok};

/// The names in each layer of `image`, from `save`'s archive, base layers included.
fn layer_names(d: &Daemon, image: &str) -> Vec<Vec<String>> {
    let tar_path = d.dir.path().join(format!("{}.tar", image.replace([':', '/'], "_")));
    ok(&d.berth(&["save", "-o", tar_path.to_str().unwrap(), image]));
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
        files.insert(name, buf);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut names: Vec<String> = tar::Archive::new(&files[l.as_str().unwrap()][..])
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_owned())
                .filter(|n| n != "." && n != "./")
                .collect();
            names.sort();
            names
        })
        .collect()
}

#[test]
fn run_layers_hold_no_mount_stubs() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let base = layer_names(&d, "busybox:latest").len();
    let dir = d.dir_with(
        "stubs",
        "FROM busybox\n\
         RUN true\n\
         RUN --mount=type=cache,target=/root/.cache/pip --mount=type=tmpfs,target=/scratch/tmp echo hi > /made\n\
         RUN --mount=type=cache,target=/var/cache/kept mkdir -p /var/cache && echo x > /var/cache/beside\n",
    );
    ok(&d.berth(&["build", "-q", "-t", "stubs", dir.to_str().unwrap()]));
    let layers = layer_names(&d, "stubs");
    // `RUN true` changed nothing: no layer. The other two RUN steps add one layer each.
    assert_eq!(layers.len(), base + 2, "{layers:?}");
    assert_eq!(layers[base], ["made"], "{layers:?}");
    // /var/cache was made by the step (not a stub) and keeps its file; the cache mount's
    // own target is gone.
    assert_eq!(layers[base + 1], ["var", "var/cache", "var/cache/beside"], "{layers:?}");
    // The image still runs, and /etc/hosts inside a container is the runtime's, as before.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "stubs",
        "sh",
        "-c",
        "cat /made; ls /root/.cache 2>&1 | head -1; grep -c localhost /etc/hosts",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hi");
    assert!(lines[1].contains("No such file"), "{out}");
    assert_ne!(lines[2], "0", "{out}");
}
