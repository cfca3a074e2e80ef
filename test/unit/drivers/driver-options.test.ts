import assert from "node:assert/strict";
import { containerSettings, parseBytes } from "../../../drivers/docker-container/options.js";
import { DriverOptionError } from "../../../drivers/driver.js";
import { driverFactory } from "../../../drivers/registry.js";
import { remoteAddress } from "../../../drivers/remote/driver.js";

function create(driver: string, endpoint: string, driverOpts: Record<string, string>) {
  return driverFactory(driver).create({
    name: "n0",
    endpoint,
    driverOpts,
    platforms: [],
    flags: [],
    env: {},
  });
}

describe("driver options", () => {
  it("refuses an unknown docker-container option, naming the valid ones", () => {
    assert.throws(
      () => create("docker-container", "unix:///var/run/docker.sock", { colour: "red" }),
      (err: Error) =>
        err instanceof DriverOptionError &&
        /invalid driver option "colour" for docker-container driver: valid options are image, network, .*env\.<name>/.test(
          err.message,
        ),
    );
  });

  it("accepts env.NAME options and passes them as the engine's environment", () => {
    assert.deepEqual(containerSettings({ "env.HTTP_PROXY": "http://p:3128" }).env, [
      "HTTP_PROXY=http://p:3128",
    ]);
  });

  it("reads memory sizes with binary units", () => {
    assert.equal(parseBytes("512m", "memory"), 512 * 1024 * 1024);
    assert.equal(parseBytes("2g", "memory"), 2 * 1024 ** 3);
    assert.equal(containerSettings({ "memory-swap": "-1" }).memorySwap, -1);
  });

  it("refuses a memory value that is not a size", () => {
    assert.throws(
      () => create("docker-container", "", { memory: "lots" }),
      /invalid value "lots" for driver option memory/,
    );
  });

  it("defaults the restart policy to unless-stopped and reads on-failure:N", () => {
    assert.deepEqual(containerSettings({}).restartPolicy, { Name: "unless-stopped" });
    assert.deepEqual(containerSettings({ "restart-policy": "on-failure:3" }).restartPolicy, {
      Name: "on-failure",
      MaximumRetryCount: 3,
    });
  });

  it("refuses a retry count on a policy other than on-failure", () => {
    assert.throws(() => create("docker-container", "", { "restart-policy": "always:2" }), /restart-policy/);
  });

  it("refuses a default-load value that is not a boolean", () => {
    assert.throws(
      () => create("docker-container", "", { "default-load": "maybe" }),
      /expected true or false/,
    );
  });

  it("turns default-load into the defaultLoad feature", () => {
    assert.equal(create("docker-container", "", { "default-load": "true" }).features().defaultLoad, true);
    assert.equal(create("docker-container", "", {}).features().defaultLoad, false);
  });

  it("refuses remote TLS options without cacert", () => {
    assert.throws(
      () => remoteAddress("tcp://127.0.0.1:1234", { cert: "/c.pem", key: "/k.pem" }),
      /need cacert/,
    );
  });

  it("refuses a remote cert without its key", () => {
    assert.throws(
      () => remoteAddress("tcp://127.0.0.1:1234", { cacert: "/ca.pem", cert: "/c.pem" }),
      /cert and key must be given together/,
    );
  });

  it("refuses relative remote TLS paths", () => {
    assert.throws(
      () => create("remote", "tcp://127.0.0.1:1234", { cacert: "ca.pem" }),
      /must be an absolute path: ca.pem/,
    );
  });

  it("refuses tcp remote endpoints without mutual TLS", () => {
    assert.throws(() => remoteAddress("tcp://127.0.0.1:1234", {}), /needs mutual TLS/);
  });

  it("turns a remote tcp endpoint with TLS options into connection parameters", () => {
    assert.deepEqual(
      remoteAddress("tcp://engine.local:1234", {
        cacert: "/ca.pem",
        cert: "/c.pem",
        key: "/k.pem",
        servername: "kilnd",
      }),
      {
        kind: "tcp",
        host: "engine.local",
        port: 1234,
        tls: { cacert: "/ca.pem", cert: "/c.pem", key: "/k.pem", servername: "kilnd" },
      },
    );
  });

  it("turns a remote unix endpoint into a socket path", () => {
    assert.deepEqual(remoteAddress("unix:///run/kiln/kilnd.sock", {}), {
      kind: "unix",
      path: "/run/kiln/kilnd.sock",
    });
  });

  it("refuses remote endpoints of other schemes", () => {
    assert.throws(
      () => remoteAddress("http://x:1", {}),
      /unsupported endpoint http:\/\/x:1 for the remote driver/,
    );
  });

  it("names the known drivers when asked for an unknown one", () => {
    assert.throws(
      () => driverFactory("kube"),
      /failed to find driver "kube": known drivers are docker-container, remote/,
    );
  });
});
