//! The one key map between Meta's checkpoints and our modules.
//!
//! Module paths are the state-dict keys of Meta's `SAM2Base` unchanged: every module in
//! `crate::model` names its parameters after the PyTorch attribute path, including the numeric
//! indices of `nn.Sequential` members with their gaps, which the modules spell out themselves:
//!
//! | checkpoint key                                   | module                                   |
//! |--------------------------------------------------|------------------------------------------|
//! | `sam_mask_decoder.output_upscaling.{0,1,3}`      | `MaskDecoder::upscale_{conv1,norm,conv2}` (2: GELU, 4: GELU) |
//! | `sam_prompt_encoder.mask_downscaling.{0,1,3,4,6}`| `PromptEncoder::mask_{conv1,norm1,conv2,norm2,conv3}` (2, 5: GELU) |
//! | `image_encoder.neck.convs.{j}.conv`              | `FpnNeck::convs[j]` (trunk level `3 - j`) |
//! | `memory_encoder.mask_downsampler.encoder.{3i,3i+1}` | `MaskDownSampler::layers[i]` (conv, LayerNorm2d; `3i+2`: GELU) |
//! | `memory_encoder.mask_downsampler.encoder.{3n}`   | `MaskDownSampler::proj` (1×1 conv)       |
//! | `memory_encoder.fuser.layers.{i}.pwconv{1,2}`    | `CxBlock::pw` (an `Mlp` of two layers)   |
//! | `memory_attention.layers.{i}.linear{1,2}`        | `MemoryAttentionLayer::ffn`              |
//! | `maskmem_tpos_enc` `[n, 1, 1, mem]`              | `VideoModules::maskmem_tpos_enc` `[n, mem]` |
//! | `*.weight` of `nn.Linear` `[out, in]`            | `Linear::weight` `[in, out]` (transposed on load) |
//! | `*.weight` of `nn.Embedding` `[n, C]`            | token tensors / host vectors              |
//!
//! Keys of the video path (memory attention, memory encoder, object pointers) are listed in
//! [`VIDEO_ONLY_PREFIXES`]: an image-only model (`load_sam2`) does not upload them; the whole
//! model (`load_sam2_video`) uses every key.

/// Checkpoint key for a module path (identity: module paths mirror the PyTorch attribute paths).
pub fn checkpoint_key(module_path: &str) -> &str {
    module_path
}

/// Key prefixes used only by the video path.
pub const VIDEO_ONLY_PREFIXES: &[&str] = &[
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "mask_downsample.",
    "no_obj_embed_spatial",
];

/// Keys SAM 2.1 adds over SAM 2.0; their presence tells the two versions apart.
pub const SAM2_1_ONLY_KEYS: &[&str] = &["no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"];

/// Registered buffers stored in the state dict: loaded like parameters, but not counted as such.
pub const BUFFER_KEYS: &[&str] = &["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"];

/// Whether `key` belongs to the video path only.
pub fn is_video_only(key: &str) -> bool {
    VIDEO_ONLY_PREFIXES.iter().any(|p| key.starts_with(p))
}
