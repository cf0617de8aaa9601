//! Label formats for JS: COCO RLE, polygons, YOLO-seg lines and COCO annotations from binary
//! masks (`width·height` bytes, nonzero = object). Pure CPU functions: they need no model.

use super::{js_err, set};
use crate::error::Error;
use crate::predictor::labels::coco::CocoAnnotation;
use crate::predictor::labels::mask_to_polygons;
use crate::predictor::labels::yolo::{SegmentStrategy, yolo_line, yolo_polygon};
use crate::predictor::rle::Rle;
use js_sys::{Array, Float64Array, Object, Uint8Array};
use wasm_bindgen::prelude::*;

/// The mask as booleans, after checking its length against `width × height`.
fn bools(mask: &[u8], width: usize, height: usize) -> Result<Vec<bool>, JsError> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(mask.len()) {
        return Err(JsError::new(&format!("a {width}x{height} mask cannot be {} bytes long", mask.len())));
    }
    Ok(mask.iter().map(|&v| v != 0).collect())
}

/// A simplification tolerance in pixels (Douglas-Peucker; 0 keeps every pixel corner).
fn tolerance(value: Option<f64>) -> Result<f64, JsError> {
    match value {
        None => Ok(0.0),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(t),
        Some(t) => Err(JsError::new(&format!("tolerance must be a finite number >= 0, got {t}"))),
    }
}

fn ring(points: &[[f64; 2]]) -> Float64Array {
    let flat: Vec<f64> = points.iter().flat_map(|&[x, y]| [x, y]).collect();
    Float64Array::from(flat.as_slice())
}

/// COCO compressed RLE of a mask (pycocotools' `encode`): `{size: [height, width], counts}`.
#[wasm_bindgen(js_name = maskToRle)]
pub fn mask_to_rle(mask: &[u8], width: usize, height: usize) -> Result<JsValue, JsError> {
    let rle = Rle::from_mask(mask, width, height).map_err(js_err)?;
    let obj = Object::new();
    set(&obj, "size", Array::of2(&(height as u32).into(), &(width as u32).into()))?;
    set(&obj, "counts", rle.to_coco_string())?;
    Ok(obj.into())
}

/// The mask (`width·height` bytes, 0/1) of COCO compressed RLE `counts` of a `height × width`
/// image.
#[wasm_bindgen(js_name = rleToMask)]
pub fn rle_to_mask(counts: &str, height: usize, width: usize) -> Result<Uint8Array, JsError> {
    let rle = Rle::from_coco_string(counts, height, width).map_err(js_err)?;
    let mask: Vec<u8> = rle.to_mask().map_err(js_err)?.into_iter().map(u8::from).collect();
    Ok(Uint8Array::from(mask.as_slice()))
}

/// The outlines of a mask's 8-connected components, in pixel coordinates: an array of
/// `{exterior: Float64Array, holes: Float64Array[]}`, each ring `[x0, y0, x1, y1, …]`.
#[wasm_bindgen(js_name = maskToPolygons)]
pub fn mask_to_polygons_js(mask: &[u8], width: usize, height: usize, tolerance_px: Option<f64>) -> Result<Array, JsError> {
    let polygons = mask_to_polygons(&bools(mask, width, height)?, width, height, tolerance(tolerance_px)?).map_err(js_err)?;
    polygons
        .iter()
        .map(|p| {
            let obj = Object::new();
            set(&obj, "exterior", ring(&p.exterior))?;
            set(&obj, "holes", p.holes.iter().map(|h| ring(h)).collect::<Array>())?;
            Ok::<JsValue, JsError>(obj.into())
        })
        .collect()
}

/// One YOLO segmentation line (`class x1 y1 …`, normalised) for a mask, or `undefined` for an
/// empty mask. `strategy`: `"all"` (default, components bridged as Ultralytics does) or
/// `"largest"`.
#[wasm_bindgen(js_name = maskToYolo)]
pub fn mask_to_yolo(mask: &[u8], width: usize, height: usize, class_id: usize, tolerance_px: Option<f64>, strategy: Option<String>) -> Result<Option<String>, JsError> {
    let strategy = match strategy.as_deref() {
        None | Some("all") => SegmentStrategy::All,
        Some("largest") => SegmentStrategy::Largest,
        Some(other) => return Err(JsError::new(&format!("unknown strategy {other:?}: use \"all\" or \"largest\""))),
    };
    let polygon = yolo_polygon(&bools(mask, width, height)?, width, height, strategy, tolerance(tolerance_px)?).map_err(js_err)?;
    Ok(polygon.map(|p| yolo_line(class_id, &p, width, height)))
}

/// A COCO annotation of a mask as a JSON string (compressed RLE, area and pycocotools' box;
/// `score` becomes `predicted_iou`), ready for the `annotations` list of a COCO file.
#[wasm_bindgen(js_name = maskToCocoAnnotation)]
pub fn mask_to_coco_annotation(id: u32, image_id: u32, category_id: u32, mask: &[u8], width: usize, height: usize, score: Option<f32>) -> Result<String, JsError> {
    if score.is_some_and(|s| !s.is_finite()) {
        return Err(js_err(Error::Input("score must be finite".into())));
    }
    let rle = Rle::from_mask(mask, width, height).map_err(js_err)?;
    let ann = CocoAnnotation { predicted_iou: score, ..CocoAnnotation::from_rle(id.into(), image_id.into(), category_id.into(), &rle) };
    serde_json::to_string(&ann).map_err(|e| JsError::new(&format!("cannot write COCO JSON: {e}")))
}
