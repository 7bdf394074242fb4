//! The BERT WordPiece tokenizer (normalizer, pre-tokenizer, WordPiece), with
//! offsets carried through every stage. Mirrors HF tokenizers' BERT pipeline.
