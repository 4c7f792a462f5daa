//! `bootherd serve` (being written).
