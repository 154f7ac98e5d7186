//! The crate's layers point one way (ARCHITECTURE.md): each module of `src/` may use
//! only its own layer and the layers below it, sibling modules never use each other
//! in a circle, and the scheduling pass stays free of I/O.
//!
//! The source is parsed with `syn`, and every `use` and every path that starts with
//! `crate`, `super` or `self` counts as a dependency of the module whose file holds
//! it. Test-only child modules (`tests`) may use anything of their parent's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The layers, bottom first: the first segment of a module path names its layer.
const LAYERS: &[&str] = &[
    "foundation",
    "model",
    "scheduler",
    "storage",
    "execution",
    "usecases",
    "app",
    "cli",
];

/// Crates and std modules that do I/O, which the pure scheduling pass never touches.
const IO: &[&[&str]] = &[
    &["std", "fs"],
    &["std", "net"],
    &["std", "process"],
    &["std", "io"],
    &["std", "thread"],
    &["rusqlite"],
    &["nix"],
    &["tracing"],
];

type Module = Vec<String>;

/// One file of the crate: its module path and every path it names.
struct SourceFile {
    file: PathBuf,
    module: Module,
    paths: Vec<Named>,
}

/// A path a file names, and whether it is named by test-only code.
struct Named {
    path: Vec<String>,
    in_test: bool,
}

fn source_files() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("src is readable").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = module_of(&src, &path);
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                let syntax = syn::parse_file(&text)
                    .unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
                let mut paths = Paths::default();
                paths.visit_file(&syntax);
                out.push(SourceFile {
                    file: path.strip_prefix(&src).expect("under src").to_path_buf(),
                    module,
                    paths: paths.0,
                });
            }
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` is the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let mut parts: Module = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Every path a file names: `use` trees expanded, and paths in code.
#[derive(Default)]
struct Paths(Vec<Named>, usize);

impl Paths {
    fn push(&mut self, path: Vec<String>) {
        let in_test = self.1 > 0;
        self.0.push(Named { path, in_test });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                self.push(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                self.push(path);
            }
            syn::UseTree::Glob(_) => self.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let test = item.attrs.iter().any(|a| {
            a.path().is_ident("cfg")
                && a.meta
                    .require_list()
                    .is_ok_and(|l| l.tokens.to_string() == "test")
        });
        self.1 += usize::from(test);
        syn::visit::visit_item_mod(self, item);
        self.1 -= usize::from(test);
    }

    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {
        // `pub(in crate::x)` says who may see an item; it uses nothing.
    }
}

/// The module a path names, relative to the module `from` that names it: the longest
/// prefix that is a module of the crate. None for other crates and for items of
/// `from` itself.
fn target(from: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut absolute: Module = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super") | Some("self") => from.clone(),
        _ => return None,
    };
    let mut rest = if path[0] == "crate" { &path[1..] } else { path };
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                absolute.pop();
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|m| modules.contains(m))
}

fn rank(module: &Module) -> Option<usize> {
    let layer = module.first()?;
    LAYERS.iter().position(|l| l == layer)
}

/// Module-level edges: (from, to) -> the files and paths that make them.
fn edges(files: &[SourceFile]) -> BTreeMap<(Module, Module), Vec<String>> {
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    let mut out: BTreeMap<(Module, Module), Vec<String>> = BTreeMap::new();
    for f in files {
        for named in &f.paths {
            let Some(to) = target(&f.module, &named.path, &modules) else {
                continue;
            };
            if to == f.module {
                continue;
            }
            let mut from = f.module.clone();
            if named.in_test {
                from.push("tests".into());
            }
            out.entry((from, to)).or_default().push(format!(
                "{}: {}",
                f.file.display(),
                named.path.join("::")
            ));
        }
    }
    out
}

#[test]
fn every_module_of_src_belongs_to_a_layer() {
    let strays: Vec<String> = source_files()
        .iter()
        .filter(|f| !f.module.is_empty() && rank(&f.module).is_none())
        .map(|f| f.file.display().to_string())
        .collect();
    assert!(
        strays.is_empty(),
        "these files sit outside every layer ({}); move them into one: {strays:?}",
        LAYERS.join(", ")
    );
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let files = source_files();
    let mut wrong = Vec::new();
    for ((from, to), at) in edges(&files) {
        if let (Some(a), Some(b)) = (rank(&from), rank(&to)) {
            if b > a {
                wrong.push(format!(
                    "{} ({}) uses {} ({}), a layer above: {}",
                    from.join("::"),
                    LAYERS[a],
                    to.join("::"),
                    LAYERS[b],
                    at[0]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Where `from` and `to` part: their common parent and the two children of it that
/// hold them. None when one holds the other.
fn siblings(from: &Module, to: &Module) -> Option<(Module, String, String)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((
        from[..common].to_vec(),
        from[common].clone(),
        to[common].clone(),
    ))
}

#[test]
fn no_two_modules_use_each_other_in_a_circle() {
    let files = source_files();
    let mut graph: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for ((from, to), at) in edges(&files) {
        let Some((parent, a, b)) = siblings(&from, &to) else {
            continue;
        };
        // A test module may use any fixture beside it.
        if from[parent.len()..].iter().any(|m| m == "tests") {
            continue;
        }
        graph
            .entry(parent)
            .or_default()
            .entry(a)
            .or_default()
            .entry(b)
            .or_insert_with(|| at[0].clone());
    }
    let mut cycles = Vec::new();
    for (parent, edges) in &graph {
        for cycle in strongly_connected(edges) {
            let witnesses: Vec<String> = cycle
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|(b, _)| cycle.contains(b))
                        .map(move |(b, at)| format!("    {a} -> {b} ({at})"))
                })
                .collect();
            cycles.push(format!(
                "in {}: {}\n{}",
                if parent.is_empty() {
                    "crate".into()
                } else {
                    parent.join("::")
                },
                cycle.join(" <-> "),
                witnesses.join("\n")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that use each other in a circle:\n{}",
        cycles.join("\n")
    );
}

/// The groups of two or more nodes that reach each other (Tarjan's algorithm).
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flat_map(|m| m.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.out.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn the_scheduling_pass_does_no_io() {
    let found: Vec<String> = source_files()
        .iter()
        .filter(|f| f.module.first().is_some_and(|m| m == "scheduler"))
        .flat_map(|f| {
            f.paths
                .iter()
                .filter(|n| {
                    !n.in_test
                        && IO.iter().any(|io| {
                            n.path.iter().zip(*io).filter(|(a, b)| a == *b).count() == io.len()
                        })
                })
                .map(move |n| format!("{}: {}", f.file.display(), n.path.join("::")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "the scheduler is pure decision code; move this I/O to a use-case:\n{}",
        found.join("\n")
    );
}
