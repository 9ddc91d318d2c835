//! Generated container names (`brave_turing`), for containers created without `--name`:
//! an adjective and the surname of someone who shaped computing or science.

const LEFT: &[&str] = &[
    "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "curious", "daring", "eager", "elegant",
    "epic", "fervent", "focused", "friendly", "gallant", "gentle", "happy", "hopeful", "jolly", "keen", "kind",
    "lucid", "merry", "modest", "nifty", "noble", "patient", "quirky", "quiet", "relaxed", "serene", "sharp", "stoic",
    "swift", "tender", "trusting", "vibrant", "wise", "witty", "zealous",
];

const RIGHT: &[&str] = &[
    "allen",
    "babbage",
    "backus",
    "bell",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "feynman",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "sinoussi",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wing",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname`; `retry > 0` appends a digit as Docker does on collisions.
pub fn generate(retry: u32) -> String {
    let id = berth_base::new_id();
    let n = u64::from_str_radix(&id[..16], 16).unwrap_or(0);
    let left = LEFT[(n % LEFT.len() as u64) as usize];
    let right = RIGHT[((n / LEFT.len() as u64) % RIGHT.len() as u64) as usize];
    if retry > 0 { format!("{left}_{right}{}", n % 10) } else { format!("{left}_{right}") }
}

/// Docker's container-name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        let n = super::generate(0);
        assert!(super::valid(&n), "{n}");
        assert!(!super::valid("a"));
        assert!(!super::valid("-ab"));
        assert!(!super::valid("a b"));
        assert!(super::valid("web.1_x-y"));
    }
}
