//! Fuzz target: the API's request decoding — Go-style query strings (`Values`) into every
//! query struct the daemon reads, `filters` JSON, the build query, and a container-create
//! JSON body as the daemon decodes it. The first byte picks the decoder.
#![no_main]

use berth_api::models::ContainerCreateBody;
use berth_api::query::{self, Filters, Values};
use libfuzzer_sys::fuzz_target;

fn all_structs(v: &Values) {
    let _ = v.decode::<query::CreateContainer>();
    let _ = v.decode::<query::ListContainers>();
    let _ = v.decode::<query::RemoveContainer>();
    let _ = v.decode::<query::WaitContainer>();
    let _ = v.decode::<query::AttachContainer>();
    let _ = v.decode::<query::Resize>();
    let _ = v.decode::<query::StopContainer>();
    let _ = v.decode::<query::KillContainer>();
    let _ = v.decode::<query::Logs>();
    let _ = v.decode::<query::InspectContainer>();
    let _ = v.decode::<query::ListImages>();
    let _ = v.decode::<query::CreateImage>();
    let _ = v.decode::<query::TagImage>();
    let _ = v.decode::<query::RemoveImage>();
    let _ = v.decode::<query::BuildProgress>();
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which % 4 == 3 {
        // POST /containers/create's body: what the daemon's `reply::json_body` does.
        let _ = serde_json::from_slice::<ContainerCreateBody>(rest);
        return;
    }
    let Ok(q) = std::str::from_utf8(rest) else { return };
    match which % 4 {
        0 => {
            let v = Values::parse(q);
            let _ = v.get("filters");
            let _ = v.get_all("buildargs").count();
            all_structs(&v);
        }
        1 => {
            if let Ok(f) = Filters::parse(q) {
                let _ = f.to_json();
                let _ = f.get("label");
            }
        }
        _ => {
            if let Ok(b) = query::Build::parse(q) {
                // What the client sends must read back as the same request.
                let again = query::Build::parse(&b.to_query());
                assert!(again.is_ok(), "Build::to_query does not parse back: {q:?} -> {:?}", b.to_query());
            }
        }
    }
});
