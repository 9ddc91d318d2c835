//! The names BuildKit's Dockerfile frontend gives a build's vertices, so that progress
//! reads as it does against dockerd: `[internal] load metadata for
//! docker.io/library/busybox:latest` for each image a needed stage starts from, and
//! `[stage 2/5] RUN …` for the steps that make vertices. Only FROM an image, RUN,
//! COPY/ADD and WORKDIR are vertices (ENV, ARG, LABEL and the like change the config
//! only); they are numbered per stage, the number padded to the width of the stage's
//! total; the stage is named by its `AS` name, else `stage-<index>`, and not at all when
//! the Dockerfile has one stage. A FROM shows the image's full name, with the manifest
//! digest when the build pulled it (a base found locally is used by name, as dockerd's
//! BuildKit resolves it).

use std::collections::BTreeSet;

use berth_base::Reference;
use berth_build::plan::{Plan, RunMount, Step};

/// One stage's numbering.
#[derive(Debug, Clone, PartialEq)]
struct StageNames {
    /// `base`, `stage-1`, or none.
    label: Option<String>,
    /// Its vertices in all.
    total: usize,
    /// For each step, its number among the vertices, if it is one.
    numbers: Vec<Option<usize>>,
    /// The image its FROM names (`None` for scratch or a stage).
    image: Option<String>,
}

/// The vertex names of one build's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexNames {
    stages: Vec<StageNames>,
    /// Images of the stages the target needs, tagged (`docker.io/library/busybox:latest`).
    metadata: Vec<String>,
}

/// Whether FROM `base` in stage `i` names an image (not an earlier stage or scratch).
fn from_image(plan: &Plan, i: usize, base: &str) -> bool {
    !base.eq_ignore_ascii_case("scratch") && plan.stage_index(base).is_none_or(|d| d >= i)
}

/// The stages `target` (or the last) needs, by what each reads of another.
fn needed(plan: &Plan, target: Option<&str>) -> BTreeSet<usize> {
    let last = plan.stages.len().saturating_sub(1);
    let t = target.and_then(|t| plan.stage_index(t)).unwrap_or(last);
    let mut out = BTreeSet::new();
    let mut todo = vec![t];
    while let Some(i) = todo.pop() {
        if !out.insert(i) {
            continue;
        }
        for (_, _, step) in &plan.stages[i].steps {
            let reads: Vec<&str> = match step {
                Step::From { base, .. } => vec![base.as_str()],
                Step::Copy { from: Some(f), .. } => vec![f.as_str()],
                Step::Run { mounts, .. } => mounts
                    .iter()
                    .filter_map(|m| match m {
                        RunMount::Bind { from: Some(f), .. } => Some(f.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            todo.extend(reads.into_iter().filter_map(|n| plan.stage_index(n)).filter(|d| *d < i));
        }
    }
    out
}

impl VertexNames {
    /// The names for `plan` built up to `target`.
    pub fn new(plan: &Plan, target: Option<&str>) -> VertexNames {
        let single = plan.stages.len() == 1;
        let mut stages = Vec::new();
        for (i, st) in plan.stages.iter().enumerate() {
            let label = (!single).then(|| st.name.clone().unwrap_or_else(|| format!("stage-{i}")));
            let mut n = 0;
            let mut image = None;
            let numbers = st
                .steps
                .iter()
                .map(|(_, _, step)| {
                    let counted = match step {
                        Step::From { base, .. } => {
                            let img = from_image(plan, i, base);
                            if img {
                                image = Some(base.clone());
                            }
                            img
                        }
                        Step::Run { .. } | Step::Copy { .. } | Step::Workdir(_) => true,
                        _ => false,
                    };
                    counted.then(|| {
                        n += 1;
                        n
                    })
                })
                .collect();
            stages.push(StageNames { label, total: n, numbers, image });
        }
        let mut metadata = Vec::new();
        for i in needed(plan, target) {
            if let Some(img) = &stages[i].image
                && !img.contains('$')
            {
                let tagged = Reference::parse(img).map_or_else(|_| img.clone(), |r| r.with_default_tag().to_string());
                if !metadata.contains(&tagged) {
                    metadata.push(tagged);
                }
            }
        }
        VertexNames { stages, metadata }
    }

    /// The images whose metadata the build loads, as `[internal] load metadata for …` names them.
    pub fn metadata(&self) -> &[String] {
        &self.metadata
    }

    /// The vertex name of step `position` of stage `stage`, whose text is `text`; `None`
    /// when BuildKit makes no vertex of it. `pulled` gives the manifest digest of a base
    /// this build pulled, by its tagged name.
    pub fn step(
        &self,
        stage: usize,
        position: usize,
        text: &str,
        pulled: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let st = self.stages.get(stage)?;
        let number = (*st.numbers.get(position)?)?;
        let width = st.total.to_string().len();
        let mut out = String::from("[");
        if let Some(l) = &st.label {
            out.push_str(l);
            out.push(' ');
        }
        out.push_str(&format!("{number:>width$}/{}] ", st.total));
        match (&st.image, position) {
            (Some(img), 0) => {
                let (name, tagged) = match Reference::parse(img) {
                    Ok(r) => (r.to_string(), r.with_default_tag().to_string()),
                    Err(_) => (img.clone(), img.clone()),
                };
                out.push_str("FROM ");
                out.push_str(&name);
                if let Some(d) = pulled(&tagged).filter(|_| !name.contains('@')) {
                    out.push('@');
                    out.push_str(&d);
                }
            }
            _ => out.push_str(text),
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(df: &str, target: Option<&str>) -> VertexNames {
        VertexNames::new(&berth_build::frontend::plan(df, "Dockerfile").unwrap(), target)
    }

    #[test]
    fn steps_are_numbered_per_stage_as_buildkit_does() {
        let v = names(
            "FROM busybox AS base\nARG G=1\nCOPY . /app\nRUN echo\nFROM base AS final\nENV A=1\nRUN x\n\
             FROM final AS unused\nRUN never\nFROM alpine:3\nFROM scratch\nCOPY --from=base /a /a\n",
            Some("final"),
        );
        let none = |_: &str| None;
        assert_eq!(v.step(0, 0, "FROM busybox AS base", &none).unwrap(), "[base 1/3] FROM docker.io/library/busybox");
        assert_eq!(v.step(0, 1, "ARG G=1", &none), None);
        assert_eq!(v.step(0, 2, "COPY . /app", &none).unwrap(), "[base 2/3] COPY . /app");
        assert_eq!(v.step(1, 0, "FROM base AS final", &none), None);
        assert_eq!(v.step(1, 2, "RUN x", &none).unwrap(), "[final 1/1] RUN x");
        assert_eq!(v.step(4, 1, "COPY --from=base /a /a", &none).unwrap(), "[stage-4 1/1] COPY --from=base /a /a");
        // Only the target's stages load metadata.
        assert_eq!(v.metadata(), ["docker.io/library/busybox:latest"]);
        let pulled = |t: &str| (t == "docker.io/library/busybox:latest").then(|| "sha256:ab".to_owned());
        assert_eq!(v.step(0, 0, "", &pulled).unwrap(), "[base 1/3] FROM docker.io/library/busybox@sha256:ab");
    }

    #[test]
    fn one_stage_has_no_label_and_wide_totals_are_padded() {
        let mut df = String::from("FROM 127.0.0.1:5000/x/base:1\n");
        for i in 0..10 {
            df.push_str(&format!("RUN echo {i}\n"));
        }
        let v = names(&df, None);
        let none = |_: &str| None;
        assert_eq!(v.step(0, 0, "", &none).unwrap(), "[ 1/11] FROM 127.0.0.1:5000/x/base:1");
        assert_eq!(v.step(0, 10, "RUN echo 9", &none).unwrap(), "[11/11] RUN echo 9");
        assert_eq!(v.metadata(), ["127.0.0.1:5000/x/base:1"]);
    }
}
