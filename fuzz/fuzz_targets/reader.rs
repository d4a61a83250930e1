//! A whole capture file (pcap, pcapng, either gzip'd) through CaptureReader.
//!
//! Iterates until the end or the first error, touching every byte of every
//! packet. Nothing may panic; packet numbers count up from 1 and the
//! captured length never exceeds the wire length. Termination is checked by
//! libFuzzer's -timeout (every record consumes at least 12 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(mut reader) = sockscope_fuzz::reader(data, 3) else {
        return;
    };
    let _ = (reader.format(), reader.compression());
    let mut expect = 0u64;
    let mut sum = 0u64;
    loop {
        match reader.advance() {
            Ok(true) => {}
            Ok(false) => {
                assert!(reader.current().is_none());
                break;
            }
            Err(e) => {
                let _ = (e.to_string(), e.is_damage());
                break;
            }
        }
        expect += 1;
        let p = reader.current().expect("advance said there is a packet");
        assert_eq!(p.number, expect);
        assert_eq!(p.input, 3);
        assert!(p.data.len() as u64 <= u64::from(p.wire_len), "{p:?}");
        assert_eq!(reader.current_ts(), Some(p.ts));
        sum = p
            .data
            .iter()
            .fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
        let _ = reader.offset();
    }
    std::hint::black_box(sum);
});
