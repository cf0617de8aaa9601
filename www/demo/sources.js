// Where pictures come from: the image file input, a camera snapshot, the clipboard, and files
// dropped anywhere on the page (routed by type: checkpoint, image, video or frames).
import { toPixels } from '../sam2.js';
import { $, app, isImage } from './app.js';
import { fit } from './draw.js';
import { openImage } from './image.js';
import { hasCamera } from './live.js';
import { isModelFile, loadFiles } from './model.js';
import { openFrameFiles, openVideoFile } from './video.js';

let camera = null;

function stopCamera() {
  camera?.getTracks().forEach((t) => t.stop());
  camera = null;
  const video = $('#camera-preview');
  video.srcObject = null;
  video.hidden = true;
  $('#camera-snap').textContent = 'Camera snapshot';
  $('#camera-cancel').hidden = true;
}

/** First press: the camera's picture in the stage; second press: takes it as the image. */
async function snapshot() {
  const video = $('#camera-preview');
  if (!camera) {
    camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
    video.srcObject = camera;
    video.hidden = false;
    await video.play();
    $('#image-stage').classList.remove('empty');
    fit($('#image-stage'), video.videoWidth, video.videoHeight);
    $('#camera-snap').textContent = 'Take snapshot';
    $('#camera-cancel').hidden = false;
    app.status('Camera on: press "Take snapshot" (the picture stays on this device).');
    return;
  }
  const px = await toPixels(video);
  stopCamera();
  await openImage(px, `camera-${new Date().toISOString().replace(/[:.]/g, '-')}.png`);
}

const isVideo = (f) => f.type.startsWith('video/') || /\.(mp4|webm|mov|mkv|ogv)$/i.test(f.name);

/** Files dropped on the page: a checkpoint loads, a video or several images go to the Video view, one image to the Image view. */
export async function openDropped(files) {
  files = [...files];
  if (!files.length) return;
  if (files.some(isModelFile)) { await loadFiles(files); return; }
  const video = files.find(isVideo);
  if (video) { app.emit('tab', 'video'); await openVideoFile(video); return; }
  const images = files.filter(isImage);
  if (images.length > 1 && app.tab === 'video') { await openFrameFiles(images); return; }
  if (images.length) {
    if (app.tab !== 'image' && app.tab !== 'everything') app.emit('tab', 'image');
    await openImage(images[0], images[0].name);
    return;
  }
  throw new Error(`cannot open ${files[0].name}: drop an image, a video or a checkpoint`);
}

export function initSources() {
  $('#image-file').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) app.guard(() => openImage(f, f.name));
  });
  if (!hasCamera()) $('#camera-snap').hidden = true;
  $('#camera-snap').addEventListener('click', () => app.guard(snapshot));
  $('#camera-cancel').addEventListener('click', stopCamera);
  app.on('escape', () => camera && stopCamera());

  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (!item) return;
    e.preventDefault();
    const file = item.getAsFile();
    if (app.tab !== 'image' && app.tab !== 'everything') app.emit('tab', 'image');
    app.guard(() => openImage(file, `pasted.${file.type.split('/')[1] || 'png'}`));
  });

  // A drop anywhere (except the model's drop zone, which takes it itself).
  document.addEventListener('dragover', (e) => {
    if (![...(e.dataTransfer?.types ?? [])].includes('Files')) return;
    e.preventDefault();
    document.body.classList.add('dragging');
  });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dragging'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dragging');
    app.guard(() => openDropped(e.dataTransfer.files));
  });
}
