//! Checks that an upload is an x86-64 ELF executable that needs no dynamic loader.

/// Returns what is wrong in words the uploader can act on.
pub fn check_executable(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("upload is not an ELF executable (expected a static Linux x86-64 binary)".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("executable is not 64-bit little-endian; build for x86_64-unknown-linux-gnu".into());
    }
    let kind = u16_at(bytes, 0x10);
    if kind != 2 && kind != 3 {
        return Err("ELF file is not an executable (it is an object file or core dump)".into());
    }
    if u16_at(bytes, 0x12) != 62 {
        return Err("executable is not for x86-64 (wrong architecture)".into());
    }
    let table = u64_at(bytes, 0x20) as usize;
    let entry_size = u16_at(bytes, 0x36) as usize;
    let entries = u16_at(bytes, 0x38) as usize;
    if entries == 0 {
        return Err("ELF file has no program headers, so it cannot be run".into());
    }
    for index in 0..entries {
        let offset = table.saturating_add(index.saturating_mul(entry_size));
        let Some(entry) = bytes.get(offset..offset.saturating_add(entry_size.max(4))) else {
            return Err("ELF program headers run past the end of the file (truncated upload?)".into());
        };
        if u32::from_le_bytes(entry[..4].try_into().expect("four bytes")) == PT_INTERP {
            return Err(
                "executable is dynamically linked; functions run without system libraries, \
                        so build it static (RUSTFLAGS='-C target-feature=+crt-static')"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Program header type naming the dynamic loader.
const PT_INTERP: u32 = 3;

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header with one program header of `segment_type`.
    fn elf(machine: u16, segment_type: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
        bytes[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&segment_type.to_le_bytes());
        bytes
    }

    #[test]
    fn accepts_static_x86_64() {
        assert!(check_executable(&elf(62, 1)).is_ok());
    }

    #[test]
    fn refuses_the_rest() {
        assert!(
            check_executable(b"#!/bin/sh\necho hi\n")
                .unwrap_err()
                .contains("not an ELF")
        );
        assert!(check_executable(&elf(183, 1)).unwrap_err().contains("x86-64"));
        assert!(
            check_executable(&elf(62, PT_INTERP))
                .unwrap_err()
                .contains("dynamically linked")
        );
        let mut truncated = elf(62, 1);
        truncated.truncate(80);
        assert!(check_executable(&truncated).unwrap_err().contains("truncated"));
    }
}
