//! `berth image explore`: an image built from busybox to waste bytes on purpose (a file
//! written in one RUN and deleted in the next, a file rewritten whole by a chmod, fake apt
//! lists and a fake pip cache removed later) is analysed by the daemon, and every size the
//! analysis reports must agree byte for byte with what this test computes on its own from
//! the layer tars of the image's archive (`GET /images/{name}/get`, what `docker save`
//! reads). The human view shows the hints; a missing image is Docker's error and exit 1.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::Command;

use berth_e2e::{Daemon, ok, text};
use serde_json::Value;

const DOCKERFILE: &str = r#"FROM explore-base
RUN head -c 300000 /dev/urandom > /big.bin
RUN rm /big.bin
RUN mkdir -p /var/lib/apt/lists/partial && head -c 120000 /dev/urandom > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages && head -c 40000 /dev/urandom > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease
RUN mkdir -p /opt && head -c 50000 /dev/urandom > /opt/data.bin && echo one > /etc/app.conf
RUN chmod 600 /opt/data.bin && echo second-version > /etc/app.conf
RUN mkdir -p /root/.cache/pip/http/a/b /app && head -c 80000 /dev/urandom > /root/.cache/pip/http/a/b/wheel && echo 'print(1)' > /app/main.py
ENV KEEP=1
RUN rm -rf /var/lib/apt/lists /root/.cache
"#;

/// GET `path` on the daemon's socket with curl; (status, body bytes).
fn get(d: &Daemon, path: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let code = String::from_utf8_lossy(&body[nl + 1..]).trim().parse().expect("status");
    body.truncate(nl);
    (code, body)
}

/// The files of an archive (`docker save` layout) by name.
fn archive_files(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().expect("archive") {
        let mut e = e.expect("archive entry");
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = e.path().expect("name").to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("read archive entry");
        out.insert(name, b);
    }
    out
}

/// One layer tar as this test reads it: regular files (path → size, in order), whiteouts
/// (paths they delete) and opaque directories.
#[derive(Default)]
struct LayerTar {
    files: Vec<(String, u64)>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
    others: Vec<String>,
}

fn read_layer(bytes: &[u8]) -> LayerTar {
    assert!(!bytes.starts_with(&[0x1f, 0x8b]), "locally built layers are saved as plain tars");
    let mut l = LayerTar::default();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().expect("layer") {
        let e = e.expect("layer entry");
        let raw = e.path().expect("path").to_string_lossy().into_owned();
        let p = format!("/{}", raw.trim_start_matches("./").trim_end_matches('/'));
        if p == "/" {
            continue;
        }
        let (dir, name) = p.rsplit_once('/').expect("absolute");
        if name == ".wh..wh..opq" {
            l.opaque.push(dir.to_owned());
        } else if let Some(t) = name.strip_prefix(".wh.") {
            l.whiteouts.push(format!("{dir}/{t}"));
        } else if e.header().entry_type() == tar::EntryType::Regular {
            l.files.push((p, e.size()));
        } else {
            l.others.push(p);
        }
    }
    l
}

#[test]
fn explore_agrees_with_the_layer_tars_and_names_the_causes() {
    let d = Daemon::start();
    d.import_busybox("explore-base");
    let dir = d.dir_with("waste", DOCKERFILE);
    let b = d.build_plain(&dir, &["-t", "waste:1", "."]);
    assert!(b.status.success(), "build: {}{}", text(&b.stdout), text(&b.stderr));

    let out = ok(&d.berth(&["image", "explore", "--json", "waste:1"]));
    let j: Value = serde_json::from_str(&out).expect("explore --json is JSON");
    // The CLI prints the API's answer as it is.
    let (code, api) = get(&d, "/berth/images/waste:1/explore");
    assert_eq!(code, 200);
    assert_eq!(out.trim_end().as_bytes(), &api[..]);

    // The archive, through the Engine API, as `docker save` reads it.
    let (code, archive) = get(&d, "/v1.41/images/waste:1/get");
    assert_eq!(code, 200);
    let files = archive_files(&archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let layer_names: Vec<&str> =
        manifest[0]["Layers"].as_array().expect("Layers").iter().map(|l| l.as_str().expect("name")).collect();
    let config: Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().expect("Config")]).expect("config");
    let diff_ids: Vec<&str> =
        config["rootfs"]["diff_ids"].as_array().expect("diff_ids").iter().map(|d| d.as_str().unwrap()).collect();
    let history = config["history"].as_array().expect("history");
    let tars: Vec<LayerTar> = layer_names.iter().map(|n| read_layer(&files[*n])).collect();

    assert_eq!(j["Id"], config_digest(&manifest));
    assert_eq!(j["RepoTags"], serde_json::json!(["waste:1"]));

    // Layers: one per history step, the layer-making ones in diff id order.
    let layers = j["Layers"].as_array().expect("Layers");
    assert_eq!(layers.len(), history.len());
    let mut step_of_layer = Vec::new();
    for (i, (l, h)) in layers.iter().zip(history).enumerate() {
        assert_eq!(l["Index"], i);
        assert_eq!(l["CreatedBy"], h["created_by"].as_str().unwrap_or(""));
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        assert_eq!(l["EmptyLayer"], empty, "{l}");
        if !empty {
            step_of_layer.push(i);
        }
    }
    assert_eq!(step_of_layer.len(), tars.len());
    let mut layers_size = 0;
    for (k, (&i, t)) in step_of_layer.iter().zip(&tars).enumerate() {
        let size: u64 = t.files.iter().map(|f| f.1).sum();
        assert_eq!(layers[i]["DiffID"], diff_ids[k]);
        assert_eq!(layers[i]["Size"], size, "layer {i}");
        layers_size += size;
    }
    assert_eq!(j["LayersSize"], layers_size);
    let env = layers.iter().find(|l| l["Instruction"] == "ENV KEEP=1").expect("the ENV step");
    assert_eq!(env["EmptyLayer"], true);

    // Replay the layers: path → (size, step that wrote it); count every file's bytes that
    // the final image does not show.
    let mut view: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    let mut hidden: u64 = 0;
    for (&i, t) in step_of_layer.iter().zip(&tars) {
        for (p, size) in &t.files {
            if let Some((old, _)) = view.insert(p.clone(), (*size, i)) {
                hidden += old;
            }
        }
        for p in &t.others {
            if let Some((old, _)) = view.remove(p) {
                hidden += old;
            }
        }
        for w in &t.whiteouts {
            hidden += gone(&mut view, w, false);
        }
        for o in &t.opaque {
            let mine: Vec<(String, (u64, usize))> = view
                .iter()
                .filter(|(k, v)| v.1 == i && k.starts_with(&format!("{o}/")))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            hidden += gone(&mut view, o, true);
            view.extend(mine);
        }
    }
    let size: u64 = view.values().map(|v| v.0).sum();
    assert_eq!(j["Size"], size);
    assert_eq!(j["WastedBytes"], hidden);
    assert_eq!(size + hidden, layers_size);
    let wasted = j["Wasted"].as_array().expect("Wasted");
    assert_eq!(wasted.iter().map(|w| w["Size"].as_u64().unwrap()).sum::<u64>(), hidden);
    let eff = j["Efficiency"].as_f64().expect("Efficiency");
    assert!((eff - size as f64 / layers_size as f64).abs() < 1e-9, "{eff}");

    // The records, with the steps that caused them.
    let step = |needle: &str| layers.iter().position(|l| l["Instruction"].as_str().unwrap().contains(needle)).unwrap();
    let record = |path: &str| {
        wasted.iter().find(|w| w["Path"] == path).unwrap_or_else(|| panic!("no waste record for {path}: {wasted:#?}"))
    };
    let big = record("/big.bin");
    assert_eq!((big["Size"].as_u64(), big["How"].as_str()), (Some(300000), Some("deleted")));
    assert_eq!(
        (big["Layer"].as_u64(), big["By"].as_u64()),
        (Some(step("> /big.bin") as u64), Some(step("rm /big.bin") as u64))
    );
    let lists = record("/var/lib/apt/lists");
    assert_eq!(lists["Size"], 160000);
    assert_eq!(lists["Files"], 2);
    assert_eq!(lists["Layer"], step("apt/lists/partial"));
    assert_eq!(lists["By"], step("rm -rf /var/lib/apt/lists"));
    assert!(lists["Hint"].as_str().unwrap().contains("rm -rf /var/lib/apt/lists/*"), "{lists}");
    let pip = record("/root/.cache");
    assert_eq!(pip["Size"], 80000);
    assert!(pip["Hint"].as_str().unwrap().contains("--no-cache-dir"), "{pip}");
    let data = record("/opt/data.bin");
    assert_eq!((data["Size"].as_u64(), data["How"].as_str()), (Some(50000), Some("overwritten")));
    assert!(data["Hint"].as_str().unwrap().contains("chmod"), "{data}");
    let conf = record("/etc/app.conf");
    assert_eq!((conf["Size"].as_u64(), conf["How"].as_str()), (Some(4), Some("overwritten")));

    // The rm step's layer lists its deletion with the bytes it hid.
    let rm = &layers[step("rm /big.bin")];
    let del = rm["Files"].as_array().unwrap().iter().find(|f| f["Path"] == "/big.bin").expect("the deletion");
    assert_eq!(
        (del["Change"].as_str(), del["Size"].as_u64(), del["Type"].as_str()),
        (Some("deleted"), Some(300000), Some("file"))
    );
    assert_eq!(rm["Deleted"], 1);
    // The biggest file of the final image is busybox (one copy; its links carry no bytes).
    let biggest = j["Biggest"].as_array().expect("Biggest");
    let top = &biggest[0];
    assert_eq!(top["Type"], "file");
    let top_path = top["Path"].as_str().unwrap();
    assert_eq!(top["Size"], view[top_path].0);
    assert!(biggest.iter().any(|b| b["Type"] == "dir" && b["Path"] == "/opt" && b["Size"] == 50000), "{biggest:#?}");

    // The human view: the layer table, the waste and its hints.
    let human = ok(&d.berth(&["image", "explore", "waste:1"]));
    for want in [
        "Image: waste:1 (",
        "INSTRUCTION",
        "RUN rm /big.bin",
        "Biggest files:",
        "Wasted bytes (",
        "Hints:",
        "rm -rf /var/lib/apt/lists/*",
        "pip install --no-cache-dir",
        "chmod",
    ] {
        assert!(human.contains(want), "{want:?} not in:\n{human}");
    }
    // By id as well as by name.
    let id = j["Id"].as_str().unwrap();
    let by_id: Value = serde_json::from_str(&ok(&d.berth(&["image", "explore", "--json", &id[7..19]]))).unwrap();
    assert_eq!(by_id, j);
}

/// Removes `p` (unless `subtree_only`) and everything under it from `view`; the bytes removed.
fn gone(view: &mut BTreeMap<String, (u64, usize)>, p: &str, subtree_only: bool) -> u64 {
    let under = format!("{p}/");
    let keys: Vec<String> =
        view.keys().filter(|k| (!subtree_only && k.as_str() == p) || k.starts_with(&under)).cloned().collect();
    keys.iter().map(|k| view.remove(k).map(|v| v.0).unwrap_or(0)).sum()
}

fn config_digest(manifest: &Value) -> String {
    let c = manifest[0]["Config"].as_str().expect("Config");
    format!("sha256:{}", c.rsplit('/').next().unwrap().trim_end_matches(".json"))
}

#[test]
fn a_missing_image_is_dockers_error() {
    let d = Daemon::start();
    let out = d.berth(&["image", "explore", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).trim_end(), "Error response from daemon: No such image: nosuch:latest");
    assert!(out.stdout.is_empty());
    let out = d.berth(&["image", "explore", "--json", "nosuch:v2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).trim_end(), "Error response from daemon: No such image: nosuch:v2");
    let (code, body) = get(&d, "/berth/images/nosuch/explore");
    assert_eq!((code, String::from_utf8_lossy(&body).as_ref()), (404, r#"{"message":"No such image: nosuch:latest"}"#));
    let (code, body) = get(&d, "/berth/images/nosuch/other");
    assert_eq!((code, String::from_utf8_lossy(&body).as_ref()), (404, r#"{"message":"page not found"}"#));
}
