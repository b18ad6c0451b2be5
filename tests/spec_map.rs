//! Every `spec:` tag in the source is indexed in `docs/spec-map.md`, and every tag indexed there is
//! still used: the map stays the table of contents of what the code implements.

use std::collections::BTreeSet;
use std::path::Path;

/// `spec: <tag>` (or `spec: <tag> + <tag>`) occurrences in one file's text.
fn tags_in(text: &str, out: &mut BTreeSet<String>) {
    for (i, _) in text.match_indices("spec: ") {
        let mut rest = &text[i + "spec: ".len()..];
        loop {
            let tag: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-').collect();
            let len = tag.len();
            let tag = tag.trim_end_matches(['.', '-']).to_owned();
            if !tag.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                break;
            }
            out.insert(tag);
            match rest[len..].strip_prefix(" + ") {
                Some(more) => rest = more,
                None => break,
            }
        }
    }
}

fn walk(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            tags_in(&std::fs::read_to_string(&path).expect("read source"), out);
        }
    }
}

#[test]
fn every_spec_tag_is_in_the_map_and_every_mapped_tag_is_used() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = BTreeSet::new();
    walk(&root.join("src"), &mut used);
    let map = std::fs::read_to_string(root.join("docs/spec-map.md")).expect("docs/spec-map.md");
    let mapped: BTreeSet<String> = map.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).map(str::to_owned).collect();
    let missing: Vec<_> = used.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&used).collect();
    assert!(missing.is_empty(), "spec tags used in src/ but not in docs/spec-map.md: {missing:?}");
    assert!(stale.is_empty(), "tags in docs/spec-map.md no longer used in src/: {stale:?}");
    assert!(used.len() >= 40, "the scan found only {} tags: is the pattern broken?", used.len());
}
