//! The ELF object aya loads: the program, its maps and relocations.

use super::asm::*;
use super::*;

/// A relocatable ELF object holding the program, its maps and its licence,
/// as a C compiler would have written it, for aya's loader.
pub(super) fn elf(b: &Built, capacity: u32) -> Result<Vec<u8>, String> {
    use object::write::{Object, Relocation, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
        SymbolKind, SymbolScope,
    };
    const LRU_HASH: u32 = 9;
    const PERCPU_ARRAY: u32 = 6;
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = obj.add_section(Vec::new(), b"socket".to_vec(), SectionKind::Text);
    let code: Vec<u8> = b.code.iter().flat_map(Ins::bytes).collect();
    obj.append_section_data(text, &code, 8);
    obj.add_symbol(Symbol {
        name: PROGRAM.as_bytes().to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let maps = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    // struct bpf_map_def: type, key size, value size, entries, flags, id, pinning.
    let defs: [(&str, [u32; 7]); 3] = [
        (
            SETTLED_MAP,
            [LRU_HASH, KEY_LEN as u32, 8, capacity, 0, 0, 0],
        ),
        (
            CONTROL_MAP,
            [LRU_HASH, KEY_LEN as u32, 8, capacity, 0, 0, 0],
        ),
        (STATS_MAP, [PERCPU_ARRAY, 4, 8, 1, 0, 0, 0]),
    ];
    let mut symbols = Vec::new();
    for (name, def) in defs {
        let bytes: Vec<u8> = def.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = obj.append_section_data(maps, &bytes, 4);
        symbols.push(obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: at,
            size: bytes.len() as u64,
            kind: SymbolKind::Data,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(maps),
            flags: SymbolFlags::None,
        }));
    }
    let licence = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(licence, b"Dual MIT/Apache-2.0\0", 1);
    for &(at, map) in &b.maps {
        obj.add_relocation(
            text,
            Relocation {
                offset: at as u64 * 8,
                symbol: symbols[map as usize],
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: object::elf::R_BPF_64_64,
                },
            },
        )
        .map_err(|e| e.to_string())?;
    }
    obj.write().map_err(|e| e.to_string())
}
