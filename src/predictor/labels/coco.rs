//! COCO JSON (`images`, `annotations`, `categories`), as labelling tools import it: masks as
//! compressed RLE `{"size": [h, w], "counts": "…"}` or as polygons, plus SAM's scores.

use super::Polygon;
use crate::error::{Error, Result};
use crate::predictor::automatic::AmgRecord;
use crate::predictor::rle::Rle;
use serde::{Deserialize, Serialize};

/// One image of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// Unique id, referenced by annotations.
    pub id: u64,
    /// File name (relative to the images folder).
    pub file_name: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// One category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Unique id, referenced by annotations.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Parent name (COCO requires the field; may be empty).
    #[serde(default)]
    pub supercategory: String,
}

/// An annotation's mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CocoSegmentation {
    /// Compressed RLE: `size` is `[h, w]`, `counts` pycocotools' string.
    Rle { size: [usize; 2], counts: String },
    /// Polygons, each `[x1, y1, x2, y2, …]` in pixels (COCO cannot express holes this way).
    Polygons(Vec<Vec<f64>>),
}

/// One object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// Unique id.
    pub id: u64,
    /// The image it belongs to.
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// The mask.
    pub segmentation: CocoSegmentation,
    /// Set pixels.
    pub area: f64,
    /// `[x, y, w, h]`, pycocotools' `toBbox` (w and h count pixels).
    pub bbox: [f64; 4],
    /// 0 for single objects (1 marks a crowd region in COCO's ground truth).
    pub iscrowd: u8,
    /// SAM's predicted IoU, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_iou: Option<f32>,
    /// SAM's stability score, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability_score: Option<f32>,
    /// The prompt points, when known (`[[x, y], …]` in pixels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_coords: Option<Vec<[f32; 2]>>,
}

impl CocoAnnotation {
    /// An annotation whose mask is `rle` (compressed), with area and box from it.
    pub fn from_rle(id: u64, image_id: u64, category_id: u64, rle: &Rle) -> Self {
        Self {
            id,
            image_id,
            category_id,
            segmentation: CocoSegmentation::Rle { size: [rle.height, rle.width], counts: rle.to_coco_string() },
            area: rle.area() as f64,
            bbox: rle.bbox(),
            iscrowd: 0,
            predicted_iou: None,
            stability_score: None,
            point_coords: None,
        }
    }

    /// An annotation for a record of the automatic mask generator on a `width × height` image:
    /// compressed RLE, area and pycocotools' box from the mask (not the record's Meta-style
    /// box), plus the predicted IoU, stability score and prompt point.
    pub fn from_amg_record(id: u64, image_id: u64, category_id: u64, record: &AmgRecord, width: usize, height: usize) -> Result<Self> {
        let ann = Self::from_rle(id, image_id, category_id, &record.segmentation.to_rle(width, height)?);
        Ok(Self { predicted_iou: Some(record.predicted_iou), stability_score: Some(record.stability_score), point_coords: Some(vec![record.point_coords]), ..ann })
    }

    /// The same annotation with its mask as polygons (the exteriors of `polygons`; holes are
    /// lost, area and box stay those of the mask).
    pub fn with_polygons(self, polygons: &[Polygon]) -> Self {
        let flat = polygons.iter().map(|p| p.exterior.iter().flat_map(|&[x, y]| [x, y]).collect()).collect();
        Self { segmentation: CocoSegmentation::Polygons(flat), ..self }
    }
}

/// A COCO dataset file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// Images.
    pub images: Vec<CocoImage>,
    /// Objects.
    pub annotations: Vec<CocoAnnotation>,
    /// Categories.
    pub categories: Vec<CocoCategory>,
}

impl CocoDataset {
    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Input(format!("cannot write COCO JSON: {e}")))
    }

    /// Reads COCO JSON (extra fields are ignored).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Input(format!("invalid COCO JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictor::labels::mask_to_polygons;

    #[test]
    fn writes_rle_annotations_with_scores_and_reads_them_back() {
        let mask = [false, true, true, true, true, false];
        let rle = Rle::from_mask(&mask, 3, 2).unwrap();
        let mut ann = CocoAnnotation::from_rle(1, 7, 2, &rle);
        ann.predicted_iou = Some(0.5);
        ann.point_coords = Some(vec![[1.5, 0.5]]);
        let data = CocoDataset {
            images: vec![CocoImage { id: 7, file_name: "a.png".into(), width: 3, height: 2 }],
            annotations: vec![ann.clone(), CocoAnnotation::from_rle(2, 7, 2, &rle).with_polygons(&mask_to_polygons(&mask, 3, 2, 0.0).unwrap())],
            categories: vec![CocoCategory { id: 2, name: "object".into(), supercategory: String::new() }],
        };
        let json = data.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let a = &v["annotations"][0];
        assert_eq!(a["segmentation"]["size"], serde_json::json!([2, 3]));
        assert_eq!(a["segmentation"]["counts"], rle.to_coco_string());
        assert_eq!((a["area"].as_f64(), a["bbox"].clone()), (Some(4.0), serde_json::json!([0.0, 0.0, 3.0, 2.0])));
        assert_eq!((a["iscrowd"].as_u64(), a["predicted_iou"].as_f64()), (Some(0), Some(0.5)));
        assert!(a.get("stability_score").is_none());
        assert!(v["annotations"][1]["segmentation"][0].as_array().unwrap().len() >= 8);
        assert_eq!(CocoDataset::from_json(&json).unwrap(), data);
        assert!(CocoDataset::from_json("{\"images\": 3}").is_err());
    }

    #[test]
    fn generator_records_keep_their_scores_and_point() {
        use crate::predictor::automatic::{AmgRecord, Segmentation};
        let mask = [false, true, true, false, true, false];
        let rle = Rle::from_mask(&mask, 3, 2).unwrap();
        let record = AmgRecord {
            segmentation: Segmentation::BinaryMask(mask.to_vec()),
            area: 3,
            bbox: [1.0, 0.0, 1.0, 1.0],
            predicted_iou: 0.75,
            point_coords: [1.5, 0.5],
            stability_score: 0.5,
            crop_box: [0.0, 0.0, 3.0, 2.0],
        };
        let ann = CocoAnnotation::from_amg_record(4, 1, 1, &record, 3, 2).unwrap();
        assert_eq!(ann.segmentation, CocoSegmentation::Rle { size: [2, 3], counts: rle.to_coco_string() });
        assert_eq!((ann.area, ann.bbox), (3.0, [1.0, 0.0, 2.0, 2.0]), "pycocotools' box, not Meta's");
        assert_eq!((ann.predicted_iou, ann.stability_score, ann.point_coords), (Some(0.75), Some(0.5), Some(vec![[1.5, 0.5]])));
        assert!(CocoAnnotation::from_amg_record(4, 1, 1, &record, 2, 2).is_err(), "wrong image size");
    }
}
