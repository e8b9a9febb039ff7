//! `read --filter`: a BPF expression applied to capture-file frames.
//!
//! libpcap compiles the expression for each link type met (pcapng files
//! mix them) and runs it (`pcap_offline_filter`) on each frame before
//! decoding. Input: an expression. Output: keep or skip per frame.
//! Invariants: compiled once per link type; an expression that does not
//! apply to a file's link type is an error naming it.

use std::collections::HashMap;

use pcap::{BpfProgram, Capture, Linktype};

pub struct Filter {
    expr: String,
    /// By link type: the program, or why it could not be compiled.
    programs: HashMap<i32, Result<BpfProgram, String>>,
}

impl Filter {
    /// Compiles `expr` for `linktype` (a check at start-up and the first
    /// program).
    pub fn new(expr: &str, linktype: i32) -> Result<Filter, String> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: HashMap::new(),
        };
        f.program(linktype).map(|_| ()).map_err(|e| e.to_string())?;
        Ok(f)
    }

    fn program(&mut self, linktype: i32) -> Result<&BpfProgram, &str> {
        let expr = &self.expr;
        self.programs
            .entry(linktype)
            .or_insert_with(|| {
                let dead = Capture::dead(Linktype(linktype)).map_err(|e| e.to_string())?;
                dead.compile(expr, true).map_err(|e| {
                    let msg = e.to_string();
                    msg.trim_start_matches("libpcap error: ").trim().to_string()
                })
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Whether the frame is kept; an error (each time, compiled once) when
    /// the expression cannot be compiled for its link type.
    #[inline]
    pub fn keeps(&mut self, linktype: i32, data: &[u8]) -> Result<bool, String> {
        if !self.programs.contains_key(&linktype) {
            let _ = self.program(linktype);
        }
        match self.programs.get(&linktype) {
            Some(Ok(p)) => Ok(p.filter(data)),
            Some(Err(e)) => Err(format!(
                "--filter {:?} does not apply to link type {linktype}: {e}",
                self.expr
            )),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_link_type() {
        // An Ethernet frame: IPv4 TCP from 10.0.0.1:1234 to 10.0.0.2:443.
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend([0x04, 0xd2, 0x01, 0xbb]);
        ip.extend([0u8; 16]);
        eth.extend(&ip);
        let mut f = Filter::new("tcp port 443", 1).unwrap();
        assert_eq!(f.keeps(1, &eth), Ok(true));
        let mut g = Filter::new("tcp port 80", 1).unwrap();
        assert_eq!(g.keeps(1, &eth), Ok(false));
        // Raw IP (DLT_RAW 12): the same packet without the Ethernet header.
        assert_eq!(f.keeps(12, &ip), Ok(true));
        // An expression for Ethernet only.
        let mut v = Filter::new("ether host 01:02:03:04:05:06", 1).unwrap();
        assert!(v.keeps(12, &ip).unwrap_err().contains("link type 12"));
        assert!(Filter::new("tcp port", 1).is_err());
    }
}
