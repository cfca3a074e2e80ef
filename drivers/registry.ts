// The drivers Kiln knows, by name.
import { dockerContainerFactory } from "./docker-container/driver.js";
import type { DriverFactory } from "./driver.js";
import { embeddedFactory } from "./embedded/driver.js";
import { kubernetesFactory } from "./kubernetes/driver.js";
import { remoteFactory } from "./remote/driver.js";

export const DRIVER_FACTORIES: readonly DriverFactory[] = [
  embeddedFactory,
  dockerContainerFactory,
  remoteFactory,
  kubernetesFactory,
];

/** The factory named `name`; an unknown name is an error listing the ones `create` accepts. */
export function driverFactory(name: string): DriverFactory {
  const f = DRIVER_FACTORIES.find((x) => x.name === name);
  if (f) return f;
  const known = DRIVER_FACTORIES.filter((x) => x.allowsInstances).map((x) => x.name);
  throw new Error(`failed to find driver ${JSON.stringify(name)}: known drivers are ${known.join(", ")}`);
}

/** The driver `create` uses when none is named: the creatable one that suits the endpoint best. */
export function defaultFactory(endpoint: string): DriverFactory {
  const ranked = DRIVER_FACTORIES.filter((f) => f.allowsInstances).sort(
    (a, b) => b.priority(endpoint) - a.priority(endpoint),
  );
  return ranked[0]!;
}
