//! Checking a compiled module against ABI v1 before anything runs it.

use wasmtime::{ExternType, FuncType, Module, ModuleExport, ValType};

use super::error::AdapterError;

/// The one ABI version this host speaks.
pub(crate) const ABI_VERSION: i32 = 1;

/// The three pure functions an adapter offers, each JSON in and JSON out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    BuildRequest,
    ParseResponse,
    ParseCallback,
}

impl Entry {
    pub fn export_name(self) -> &'static str {
        match self {
            Entry::BuildRequest => "hermes_build_request",
            Entry::ParseResponse => "hermes_parse_response",
            Entry::ParseCallback => "hermes_parse_callback",
        }
    }
}

/// Export indices resolved once per module, so a call looks nothing up by
/// name.
#[derive(Clone)]
pub(crate) struct Exports {
    pub(crate) memory: ModuleExport,
    pub(crate) abi_version: ModuleExport,
    pub(crate) alloc: ModuleExport,
    pub(crate) manifest: ModuleExport,
    pub(crate) build_request: ModuleExport,
    pub(crate) parse_response: ModuleExport,
    pub(crate) parse_callback: ModuleExport,
}

impl Exports {
    pub(crate) fn entry(&self, entry: Entry) -> &ModuleExport {
        match entry {
            Entry::BuildRequest => &self.build_request,
            Entry::ParseResponse => &self.parse_response,
            Entry::ParseCallback => &self.parse_callback,
        }
    }
}

use ValType::{I32, I64};

/// Every function export of ABI v1 with its signature.
const FUNCTIONS: &[(&str, &[ValType], &[ValType])] = &[
    ("hermes_abi_version", &[], &[I32]),
    ("hermes_alloc", &[I32], &[I32]),
    ("hermes_manifest", &[], &[I64]),
    ("hermes_build_request", &[I32, I32], &[I64]),
    ("hermes_parse_response", &[I32, I32], &[I64]),
    ("hermes_parse_callback", &[I32, I32], &[I64]),
];

/// Checks imports, exports and the memory against ABI v1 and the memory cap;
/// every problem found is listed in the one error.
pub(crate) fn check(module: &Module, memory_cap: usize) -> Result<Exports, AdapterError> {
    let mut problems: Vec<String> = Vec::new();

    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !imports.is_empty() {
        problems.push(format!(
            "adapters may not import anything, this module imports {}",
            imports.join(", ")
        ));
    }

    match module.get_export("memory") {
        Some(ExternType::Memory(mem)) => {
            if mem.is_64() || mem.is_shared() || mem.page_size() != 65536 {
                problems.push(
                    "memory must be a plain 32-bit, unshared memory with 64 KiB pages".into(),
                );
            } else if mem.minimum().saturating_mul(65536) > memory_cap as u64 {
                problems.push(format!(
                    "memory starts at {} pages, more than the {memory_cap}-byte cap",
                    mem.minimum()
                ));
            }
        }
        Some(_) => problems.push("export \"memory\" is not a memory".into()),
        None => problems.push("missing export \"memory\"".into()),
    }

    for (name, params, results) in FUNCTIONS {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if signature_is(&f, params, results) => {}
            Some(ExternType::Func(f)) => problems.push(format!(
                "export {name:?} has type {}, expected {}",
                describe(f.params(), f.results()),
                describe(params.iter().cloned(), results.iter().cloned())
            )),
            Some(_) => problems.push(format!("export {name:?} is not a function")),
            None => problems.push(format!("missing export {name:?}")),
        }
    }

    if !problems.is_empty() {
        return Err(AdapterError::invalid_module(problems.join("; ")));
    }
    let index = |name: &str| module.get_export_index(name).expect("export checked above");
    Ok(Exports {
        memory: index("memory"),
        abi_version: index("hermes_abi_version"),
        alloc: index("hermes_alloc"),
        manifest: index("hermes_manifest"),
        build_request: index("hermes_build_request"),
        parse_response: index("hermes_parse_response"),
        parse_callback: index("hermes_parse_callback"),
    })
}

fn signature_is(f: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut f.params(), params) && same(&mut f.results(), results)
}

fn describe(
    params: impl Iterator<Item = ValType>,
    results: impl Iterator<Item = ValType>,
) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| {
        it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    let (mut p, mut r) = (params, results);
    format!("({}) -> ({})", list(&mut p), list(&mut r))
}
