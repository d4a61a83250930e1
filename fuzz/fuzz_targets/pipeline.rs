//! A whole capture file through the engine: CaptureReader → Decoder →
//! FlowTable (max_flows 8), with the flow-table invariants of
//! `sockscope_fuzz::Checker`. Checksums are verified (so bad-checksum paths
//! run) when the file's length is odd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockscope::decode::{DecodeConfig, Decoder};
use sockscope::flow::{FlowConfig, FlowTable};
use sockscope_fuzz::Checker;

const MAX_FLOWS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some(mut reader) = sockscope_fuzz::reader(data, 0) else {
        return;
    };
    let mut decoder = Decoder::new(DecodeConfig {
        verify_checksums: data.len() % 2 == 1,
    });
    let mut table = FlowTable::new(FlowConfig {
        max_flows: MAX_FLOWS,
        ..FlowConfig::default()
    });
    let mut checker = Checker::new(MAX_FLOWS);
    while let Ok(true) = reader.advance() {
        let raw = reader.current().expect("a packet after advance");
        if let Ok(p) = decoder.decode(&raw) {
            checker.note_packet(&p);
            table.process(&p, &mut checker);
            checker.step(&table);
        }
    }
    table.finish(&mut checker);
    checker.finished(&table);
});
