// Validates Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) with
// @kubernetes-models/prometheus-operator, the models generated from the operator's own CRDs.
// Usage: node validate-monitoring.mjs NODE_MODULES_DIR < objects.json (a JSON array).
// Prints one line per invalid object and exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
const entry = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
const models = await import(pathToFileURL(entry).href);
const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[object.kind];
  if (object.apiVersion !== "monitoring.coreos.com/v1" || !Model) {
    console.log(`${name}: not a monitoring.coreos.com/v1 kind this validator knows`);
    failed += 1;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`${name}: valid`);
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
