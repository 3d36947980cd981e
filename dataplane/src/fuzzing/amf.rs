//! Fuzz entry points for the AMF0 and AMF3 decoders.
