//! Root integration test of `ImageStore::explore`: an image whose layers are stored one
//! plain (built or imported) and one gzip-compressed (pulled), with a config-only step in
//! its history, analysed from the store's blobs.

use std::io::Write;

use berth_base::{Digest, ErrorKind, Reference};
use berth_image::explore::{Change, How, Kind};
use berth_image::{ImageStore, LayerSource, MEDIA_TYPE_LAYER_GZIP};

fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, n) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(*n as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &vec![7u8; *n][..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn explore_reads_plain_and_compressed_layers_in_history_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let base = tar_of(&[("bin/tool", 4000), ("tmp/build.o", 2500), ("etc/conf", 10)]);
    let l0 = store.add_layer(&mut &base[..]).unwrap();

    let top = tar_of(&[("tmp/.wh.build.o", 0), ("etc/conf", 12)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&top).unwrap();
    let gz = gz.finish().unwrap();
    let src = LayerSource {
        blob: Digest::of(&gz),
        size: gz.len() as u64,
        media_type: MEDIA_TYPE_LAYER_GZIP.to_owned(),
        diff_id: Digest::of(&top),
    };
    let l1 = store.ingest_layer(&mut &gz[..], &src).unwrap();
    assert_eq!(l1.blob, src.blob, "the pulled layer is stored compressed");

    let config: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
            {"created_by": "RUN /bin/sh -c rm /tmp/build.o && echo new > /etc/conf # buildkit"}
        ]
    }))
    .unwrap();
    let tag = Reference::parse("explore/t:1").unwrap();
    let img = store.create_image(config, &Default::default(), &[l0.clone(), l1.clone()], &[tag]).unwrap();

    let r = store.explore("explore/t:1").unwrap();
    assert_eq!(r.id, img.id.to_string());
    assert_eq!(r.repo_tags, vec!["explore/t:1".to_owned()]);
    let shape: Vec<_> = r.layers.iter().map(|l| (l.index, l.empty_layer, l.diff_id.clone(), l.size)).collect();
    assert_eq!(
        shape,
        vec![(0, false, Some(l0.diff_id.clone()), 6510), (1, true, None, 0), (2, false, Some(l1.diff_id.clone()), 12)]
    );
    assert_eq!(r.layers[0].instruction, "ADD file:abc in /");
    assert_eq!(r.layers[2].instruction, "RUN rm /tmp/build.o && echo new > /etc/conf");
    assert_eq!((r.size, r.layers_size, r.wasted_bytes), (4012, 6522, 2510));
    let del = r.layers[2].files.iter().find(|f| f.change == Change::Deleted).unwrap();
    assert_eq!((del.path.as_str(), del.size, del.kind), ("/tmp/build.o", 2500, Kind::File));
    let w: Vec<_> = r.wasted.iter().map(|w| (w.path.as_str(), w.size, w.layer, w.by, w.how)).collect();
    assert_eq!(w, vec![("/tmp/build.o", 2500, 0, 2, How::Deleted), ("/etc/conf", 10, 0, 2, How::Overwritten)]);
    assert!(r.wasted[0].hint.starts_with("`ADD file:abc in /` created /tmp/build.o and `RUN rm /tmp/build.o"));

    // By id prefix too; a missing image is Docker's words.
    assert_eq!(store.explore(&img.id.hex()[..12]).unwrap(), r);
    let e = store.explore("nosuch").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "No such image: nosuch:latest");
}
