"""
The ``ec2`` provider against moto's EC2 server (a real HTTP endpoint on loopback; boto3 is not
patched), with a real OpenSSH server on loopback standing in for the instance's SSH.

``tests/ec2_fake.py`` explains the small front that adds what moto does not simulate: a zone
out of capacity and the instance's serial console. A background "cloud-init" thread plays the
instance booting: it reads each new instance's user data from EC2 and authorizes the keys it
names for root on the loopback sshd, as cloud-init would on a real instance.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import threading
import urllib.request
from datetime import timedelta
from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command

from baseliner.attempts import clock
from baseliner.attempts.states import State
from baseliner.audit.models import AuditEvent
from baseliner.machines.models import LaunchProfile, Lease
from baseliner.machines.services import lease_provision, lease_run, lease_teardown, machine_status
from provisioning import ec2 as ec2_provider
from provisioning import ssh
from provisioning.base import ProvisionError
from provisioning.sshd import free_port
from tests import factories
from tests.ec2_fake import Ec2Front, cloud_init_console
from tests.machines_helpers import make_environment_folder, start, teardown_all

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FAKE_SECRET = "fAkEsEcReT" + secrets.token_hex(12)
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_ec2():
    """moto's server on a free loopback port, with the capacity/console front before it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    front = Ec2Front(port)
    front.start()
    front.moto_url = f"http://127.0.0.1:{port}"
    yield front
    front.stop()
    server.stop()


class Cloud:
    """One test's view of the fake AWS account."""

    def __init__(self, front: Ec2Front, deployment: str):
        import boto3

        self.front, self.deployment = front, deployment
        self.ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=front.moto_url)

    def instance(self, instance_id: str) -> dict:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def state_of(self, instance_id: str) -> str:
        return self.instance(instance_id)["State"]["Name"]

    def tags(self, instance_id: str) -> dict:
        return {t["Key"]: t["Value"] for t in self.instance(instance_id).get("Tags", [])}

    def user_data(self, instance_id: str) -> str:
        value = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"].get("Value", "")
        return base64.b64decode(value).decode()

    def run_tagged(self, tags: dict) -> str:
        """An instance launched outside baseliner's provider (for the reaper's tests)."""
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}] if tags else []
        return self.ec2.run_instances(ImageId=self.ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                      TagSpecifications=spec)["Instances"][0]["InstanceId"]


@pytest.fixture
def cloud(moto_ec2, settings, monkeypatch):
    urllib.request.urlopen(urllib.request.Request(f"{moto_ec2.moto_url}/moto-api/reset", method="POST")).read()
    moto_ec2.reset()
    # The standard AWS chain, from the environment only (no shared files, no instance role).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEBASELINER01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/baseliner-test")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/baseliner-test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    deployment = f"test-{secrets.token_hex(4)}"
    settings.BASELINER_DEPLOYMENT_ID = deployment
    settings.EC2_ENDPOINT_URL = moto_ec2.url
    settings.EC2_POLL_SECONDS = 0.05
    settings.MACHINE_PROVIDER = "ec2"
    c = Cloud(moto_ec2, deployment)
    c.ami = c.ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["*ubuntu*"]}])["Images"][0]["ImageId"]
    vpc = c.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    c.subnet_a = c.ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    c.subnet_b = c.ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    c.base_group = c.ec2.create_security_group(GroupName="lab-egress", Description="lab", VpcId=vpc)["GroupId"]
    c.profile = LaunchProfile.objects.create(
        name="h100", region=REGION, instance_type="p5.4xlarge", ami_id=c.ami, subnet_ids=f"{c.subnet_a}, {c.subnet_b}",
        security_group_ids=c.base_group, ssh_ingress_cidr="203.0.113.7/32", disk_gb=400, tags={"team": "evals"},
        price_per_hour=Decimal("6.8800"), boot_timeout_minutes=1)
    return c


@pytest.fixture
def instance_sshd(sshd, cloud, settings):
    """The loopback sshd stands in for every instance: EC2 reports its host key on the console,
    and a cloud-init thread authorizes the keys each instance's user data names for root."""
    settings.EC2_SSH_ENDPOINT_OVERRIDE = f"127.0.0.1:{sshd.port}"
    cloud.front.console = cloud_init_console([sshd.host_key, "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI"])
    stop, seen = threading.Event(), set()

    def boot():
        import boto3

        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=cloud.front.moto_url)
        while not stop.wait(0.03):
            for r in ec2.describe_instances()["Reservations"]:
                for i in r["Instances"]:
                    if i["InstanceId"] in seen:
                        continue
                    seen.add(i["InstanceId"])
                    data = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")["UserData"]
                    config = yaml.safe_load(base64.b64decode(data.get("Value", "")) or b"{}") or {}
                    for n, key in enumerate(config.get("ssh_authorized_keys", [])):
                        sshd.add_key("root", key, tag=f"cloud-init-{i['InstanceId']}-{n}")

    thread = threading.Thread(target=boot, daemon=True)
    thread.start()
    yield sshd
    stop.set()
    thread.join(5)


def new_lease() -> Lease:
    attempt = factories.attempt()
    return Lease.objects.create(attempt=attempt, provider="ec2", state=Lease.State.PROVISIONING)


def provision(lease: Lease) -> list[str]:
    messages = []
    for event in ec2_provider.Ec2Provider().provision(lease=lease):
        messages.append(event["message"])
        lease.save()
    return messages


def test_launch_tags_user_data_security_group_then_ssh_and_teardown(cloud, instance_sshd, monkeypatch):
    """One instance per attempt, tagged for this deployment and attempt, with the lease's admin
    key in its cloud-init user data and a security group admitting SSH only from the app;
    the host key pinned is the one the console printed; teardown terminates the instance,
    deletes its key pair and group, and records the estimated cost."""
    lease = new_lease()
    messages = provision(lease)

    assert [m for m in dict.fromkeys(messages)] == ["Requesting capacity", "Booting", "Waiting for SSH", "Preparing"]
    state = lease.provider_state
    instance = cloud.instance(state["instance_id"])
    assert instance["InstanceType"] == "p5.4xlarge"
    assert instance["SubnetId"] == cloud.subnet_a
    assert cloud.tags(state["instance_id"]) == {
        "Name": f"baseliner attempt {lease.attempt_id}", "team": "evals", "baseliner:managed": "true",
        "baseliner:deployment": cloud.deployment, "baseliner:attempt": str(lease.attempt_id),
        "baseliner:lease": str(lease.pk), "baseliner:token": state["token"]}
    admin_key = json.loads(lease.credentials())["admin_key"]
    admin_pub = ssh.load_private_key(admin_key)
    config = yaml.safe_load(cloud.user_data(state["instance_id"]))
    assert config["ssh_authorized_keys"] == [f"{admin_pub.get_name()} {admin_pub.get_base64()}"]
    assert config["disable_root"] is False and config["ssh_pwauth"] is False
    assert "PRIVATE KEY" not in cloud.user_data(state["instance_id"])
    groups = {g["GroupId"] for g in instance["SecurityGroups"]}
    assert groups == {cloud.base_group, state["security_group_id"]}
    rules = cloud.ec2.describe_security_groups(GroupIds=[state["security_group_id"]])["SecurityGroups"][0]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"], [x["CidrIp"] for x in r["IpRanges"]]) for r in rules] == [(22, 22, ["203.0.113.7/32"])]
    assert cloud.ec2.describe_key_pairs(KeyNames=[state["key_name"]])["KeyPairs"]
    volume = cloud.ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [state["instance_id"]]}])["Volumes"][0]
    assert volume["Size"] == 400

    # SSH reached the loopback sshd, pinned to the key the console printed (not the ECDSA line).
    assert lease.host_key == instance_sshd.host_key
    expert = ec2_provider.Ec2Provider().client(lease=lease, as_admin=False)
    try:
        assert ssh.run(expert, "id -un", timeout=10).stdout.strip() == lease.username
    finally:
        expert.close()
    assert ec2_provider.Ec2Provider().poll(lease=lease) is None

    later = clock.now() + timedelta(hours=2)
    monkeypatch.setattr(clock, "now", lambda: later)
    ec2_provider.Ec2Provider().teardown(lease=lease)
    assert cloud.state_of(state["instance_id"]) == "terminated"
    assert not cloud.ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [state["security_group_id"]]}])["SecurityGroups"]
    assert not cloud.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [state["key_name"]]}])["KeyPairs"]
    lease.refresh_from_db()
    assert lease.cost_per_hour == Decimal("6.8800")
    assert Decimal("13.75") <= lease.estimated_cost <= Decimal("13.77")  # 2 h x 6.88 USD
    # The expert's user is gone from the (stand-in) machine too.
    root = ssh.connect(address="127.0.0.1", port=instance_sshd.port, username="root", private_key=admin_key,
                       host_key=instance_sshd.host_key)
    try:
        assert not ssh.run(root, f"id -u {lease.username}", timeout=10).ok
    finally:
        root.close()
    monkeypatch.setattr(clock, "now", lambda: later + timedelta(hours=5))
    ec2_provider.Ec2Provider().teardown(lease=lease)  # again: already gone is fine, and costs nothing more
    lease.refresh_from_db()
    assert Decimal("13.75") <= lease.estimated_cost <= Decimal("13.77")


def test_capacity_error_in_the_first_zone_falls_back_to_the_second(cloud, instance_sshd):
    cloud.front.full.add(cloud.subnet_a)
    lease = new_lease()
    messages = provision(lease)
    instance = cloud.instance(lease.provider_state["instance_id"])
    assert instance["SubnetId"] == cloud.subnet_b
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert [c.get("SubnetId") for c in cloud.front.run_instances_calls] == [cloud.subnet_a, cloud.subnet_b]
    assert "The cloud has no free machine in us-east-1a right now; trying us-east-1b" in messages
    assert len(cloud.ec2.describe_instances()["Reservations"]) == 1  # nothing launched in the full zone
    ec2_provider.Ec2Provider().teardown(lease=lease)


def test_every_zone_full_or_over_quota_raises_capacity_unavailable_in_plain_words(cloud, instance_sshd):
    cloud.front.full.add(cloud.subnet_a)
    cloud.front.over_quota.add(cloud.subnet_b)
    lease = new_lease()
    with pytest.raises(ec2_provider.NoCloudCapacity) as caught:
        provision(lease)
    assert "InsufficientInstanceCapacity" in str(caught.value) and "VcpuLimitExceeded" in str(caught.value)
    assert caught.value.user_message.startswith("No H100 machine is free at the cloud provider right now.")
    assert "your clock has not started" in caught.value.user_message
    ec2_provider.Ec2Provider().teardown(lease=lease)  # the half-made lease: key pair and group go
    assert not cloud.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [lease.provider_state["key_name"]]}])["KeyPairs"]
    assert not cloud.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [lease.provider_state["key_name"]]}])["SecurityGroups"]


def test_a_host_key_other_than_the_consoles_is_refused(cloud, instance_sshd):
    _, other = ssh.generate_key()
    cloud.front.console = cloud_init_console([other])
    lease = new_lease()
    with pytest.raises(ProvisionError) as caught:
        provision(lease)
    assert "is not the instance whose console we read" in str(caught.value)
    assert caught.value.user_message == ssh.HostKeyMismatch.user_message
    assert lease.host_key == other.strip() and lease.host_key != instance_sshd.host_key
    ec2_provider.Ec2Provider().teardown(lease=lease)
    assert cloud.state_of(lease.provider_state["terminated"][0]) == "terminated"


def test_reaper_terminates_exactly_the_orphans_of_this_deployment(cloud):
    live = new_lease()
    live_id = cloud.run_tagged({"baseliner:managed": "true", "baseliner:deployment": cloud.deployment, "baseliner:lease": live.pk})
    live.provider_state = {"region": REGION, "instance_id": live_id}
    live.save()
    over = new_lease()
    Lease.objects.filter(pk=over.pk).update(state=Lease.State.TORN_DOWN)
    ended = new_lease()
    ended.attempt.ended_at = clock.now() - timedelta(hours=1)
    ended.attempt.save(update_fields=["ended_at"])
    mine = {"baseliner:managed": "true", "baseliner:deployment": cloud.deployment}
    orphan_torn_down = cloud.run_tagged({**mine, "baseliner:lease": over.pk})
    orphan_no_lease = cloud.run_tagged({**mine, "baseliner:lease": 999999})
    orphan_ended = cloud.run_tagged({**mine, "baseliner:lease": ended.pk})
    ended.provider_state = {"region": REGION, "instance_id": orphan_ended}
    ended.save()
    unrecorded = cloud.run_tagged({**mine, "baseliner:lease": live.pk})  # launched by an interrupted provisioning
    strangers = [
        cloud.run_tagged({}),  # someone else's machine
        cloud.run_tagged({"Name": "baseliner attempt 3", "baseliner:lease": over.pk}),  # looks like ours, is not managed
        cloud.run_tagged({"baseliner:managed": "true", "baseliner:deployment": "another-install", "baseliner:lease": over.pk}),
    ]

    reaped = dict(ec2_provider.ec2_reap())
    assert set(reaped) == {orphan_torn_down, orphan_no_lease, orphan_ended}
    audited = AuditEvent.objects.filter(action="ec2.instance_reaped")
    assert sorted(e.target for e in audited) == sorted(f"ec2:{REGION}:{i}" for i in reaped)
    assert reaped[orphan_no_lease] == "its lease does not exist"
    assert reaped[orphan_torn_down] == "its lease is torn_down"
    for kept in [live_id, unrecorded, *strangers]:
        assert cloud.state_of(kept) == "running"

    # The unrecorded one goes once it outlived the grace period; the others stay.
    reaped = dict(ec2_provider.ec2_reap(at=clock.now() + timedelta(hours=1)))
    assert set(reaped) == {unrecorded}
    for kept in [live_id, *strangers]:
        assert cloud.state_of(kept) == "running"


def test_teardown_refuses_an_instance_without_baselines_tags(cloud):
    stranger = cloud.run_tagged({"team": "prod-db"})
    lease = new_lease()
    lease.provider_state = {"token": "0123456789", "region": REGION, "instance_id": stranger, "key_name": "baseliner-x"}
    lease.save()
    with pytest.raises(ProvisionError, match="refusing to terminate instances without this deployment's tags"):
        ec2_provider.Ec2Provider().teardown(lease=lease)
    assert cloud.state_of(stranger) == "running"


def test_no_aws_credential_lands_in_the_database_or_the_logs(cloud, instance_sshd, caplog):
    caplog.set_level(logging.DEBUG)
    cloud.front.full.add(cloud.subnet_a)
    lease = new_lease()
    provision(lease)
    ec2_provider.Ec2Provider().poll(lease=lease)
    ec2_provider.Ec2Provider().teardown(lease=lease)
    ec2_provider.ec2_reap()
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert FAKE_SECRET not in dump.getvalue()
    assert FAKE_SECRET not in caplog.text
    assert len(caplog.records) > 10  # the logs were really captured (botocore logs at DEBUG)


@pytest.fixture
def started_env(settings, tmp_path):
    settings.ENVIRONMENTS_DIR = tmp_path / "environments"
    settings.ENVIRONMENTS_DIR.mkdir()
    settings.BASELINER_PREPARE_HOOKS = []
    yield factories.attempt(source_path=make_environment_folder(settings.ENVIRONMENTS_DIR))
    teardown_all()


def test_with_every_zone_full_the_attempt_waits_in_the_queue_clock_stopped_then_starts(cloud, instance_sshd, started_env):
    """Through the Start button's services: no capacity anywhere puts the attempt back in the
    queue with plain words and its clock not started; once a zone has room, the next try
    launches, prepares and starts the clock."""
    attempt = started_env
    cloud.front.full.update({cloud.subnet_a, cloud.subnet_b})
    lease = start(attempt)
    assert (attempt.state, lease.state, attempt.started_at) == (State.QUEUED, Lease.State.REQUESTED, None)
    status = machine_status(attempt=attempt)
    assert status["message"].startswith("No H100 machine is free at the cloud provider right now.")
    assert status["queue_position"] == 1
    assert not cloud.ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    assert not cloud.ec2.describe_key_pairs()["KeyPairs"]

    cloud.front.full.clear()
    lease_provision(lease_id=lease.pk)
    lease.refresh_from_db()
    attempt.refresh_from_db()
    assert (attempt.state, lease.state) == (State.RUNNING, Lease.State.READY)
    assert attempt.started_at == lease.ready_at
    assert lease_run(lease=lease, command="cat solve.py", as_admin=False).stdout == "print('starting solution')\n"
    instance_id = lease.provider_state["instance_id"]
    lease_teardown(lease=lease, reason="test")
    assert cloud.state_of(instance_id) == "terminated"
    lease.refresh_from_db()
    assert lease.state == Lease.State.TORN_DOWN and lease.estimated_cost is not None


def test_launch_profile_admin_saves_a_profile_and_explains_bad_input(client):
    admin = factories.user(superuser=True)
    client.force_login(admin)
    form = {"name": "h100-use1", "enabled": "on", "region": "us-east-1", "instance_type": "p5.4xlarge",
            "ami_id": "ami-0123456789abcdef0", "disk_gb": "500", "root_device_name": "/dev/sda1",
            "subnet_ids": "subnet-a, subnet-b", "availability_zones": "", "security_group_ids": "",
            "ssh_ingress_cidr": "203.0.113.7", "use_public_ip": "on", "price_per_hour": "7.00",
            "tags": '{"baseliner:managed": "false"}', "boot_timeout_minutes": "20"}
    response = client.post("/admin/machines/launchprofile/add/", form)
    assert response.status_code == 200
    assert "Tag names starting with aws: or baseliner: are reserved." in response.content.decode()
    assert not LaunchProfile.objects.exists()

    form.update(tags='{"team": "evals"}', ssh_ingress_cidr="203.0.113.7/32")
    response = client.post("/admin/machines/launchprofile/add/", form)
    assert response.status_code == 302
    profile = LaunchProfile.objects.get()
    assert profile.subnets() == ["subnet-a", "subnet-b"] and profile.tags == {"team": "evals"}


def test_the_host_key_is_read_only_from_a_complete_cloud_init_block():
    _, ed25519 = ssh.generate_key()
    console = cloud_init_console(["ecdsa-sha2-nistp256 AAAAgarbled", ed25519])
    assert ec2_provider.host_key_from_console(console) == " ".join(ed25519.split()[:2])
    assert ec2_provider.host_key_from_console(console.split("-----END SSH HOST KEY KEYS")[0]) is None  # still printing
    assert ec2_provider.host_key_from_console(f"ssh-ed25519 {ed25519.split()[1]} outside the markers\n") is None
