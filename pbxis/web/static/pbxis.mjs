/* pbxis.js as an ES module: `import Pbxis, { connect } from "/static/pbxis.mjs";` */
import "./pbxis.js";

const Pbxis = globalThis.Pbxis;
export default Pbxis;
export const {
  connect, reduce, initialState, reduceBoard, initialBoard, streamUrls, Client, Api, TRANSPORTS, EVENT_TYPES, VERSION,
} = Pbxis;
