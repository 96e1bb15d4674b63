// The package's own face descriptors, for scripts/dlib_resnet.py to check its ONNX rebuild
// against: node descriptors.cjs CROPS COUNT OUT. CROPS holds COUNT 150 x 150 RGB uint8 crops,
// row after row; OUT gets COUNT x 128 float32 descriptors. TF.js runs on its CPU backend, with
// the weights read from node_modules: nothing is downloaded.
const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const SIZE = 150;

async function main([crops, count, out]) {
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const model = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  await faceapi.nets.faceRecognitionNet.loadFromDisk(model);
  const pixels = new Uint8Array(fs.readFileSync(crops));
  const n = Number(count);
  if (pixels.length !== n * SIZE * SIZE * 3) throw new Error(`${crops}: not ${n} crops of ${SIZE} px`);
  const descriptors = new Float32Array(n * 128);
  for (let i = 0; i < n; i += 1) {
    const crop = pixels.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3);
    const input = tf.tensor3d(crop, [SIZE, SIZE, 3], 'int32');
    descriptors.set(await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(input), i * 128);
    input.dispose();
  }
  fs.writeFileSync(out, Buffer.from(descriptors.buffer));
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`error: ${error.message}`);
  process.exit(1);
});
