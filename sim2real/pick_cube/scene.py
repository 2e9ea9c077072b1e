"""The pick-cube MJCF: franky-sim's FR3 arm on a table, a cube, lights and two cameras."""

from __future__ import annotations

import copy
import importlib.resources
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

CUBE_HALF_SIZE_M = 0.02
CUBE_MASS_KG = 0.05
# Franka's TCP sits 0.1034 m past the flange-mounted hand frame, between the finger pads.
EE_OFFSET_M = 0.1034
PHYSICS_DT_S = 0.002
# Geom groups: 0 table/cube, 2 hand and fingers, 3 hand collisions (hidden); see _split_arm_link_geoms.
DETAILED_VISUAL_GROUP = 1
LIGHT_VISUAL_GROUP = 4
CAMERA_GEOM_GROUPS = (0, 2, LIGHT_VISUAL_GROUP)
RENDER_GEOM_GROUPS = (0, DETAILED_VISUAL_GROUP, 2)
GRIPPER_OPEN_M = 0.04  # per finger; the tendon "split" is the mean finger opening
FRONT_CAMERA_POS_M = (1.1, 0.42, 0.5)
FRONT_CAMERA_TARGET_M = (0.5, 0.0, 0.14)
ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))
ARM_TORQUE_LIMITS_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
# The tendon gripper: a stiff position servo whose force limit sets the squeeze (~25 N/finger).
GRIPPER_KP = 4000.0
GRIPPER_KV = 100.0
GRIPPER_FORCE_LIMIT_N = 50.0


def fr3_assets_dir() -> Path:
    """Where the installed franky_sim package keeps fr3.xml and its meshes."""
    try:
        root = importlib.resources.files("franky_sim")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "The pick-cube scene uses the FR3 model shipped by franky-sim: run `pip install franky-sim`."
        ) from None
    return Path(str(root)) / "assets"


def _look_at_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF camera xyaxes that make a camera at `pos` look at `target` (cameras look along -z)."""
    forward = np.subtract(target, pos, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return " ".join(f"{v:.6f}" for v in (*right, *cam_up))


def _fmt(values) -> str:
    return " ".join(f"{float(v):g}" for v in values)


def build_scene_xml(image_size: int = 128, actuator_lag_s: float = 0.0) -> str:
    """The MJCF text of the scene; `image_size` only sizes the offscreen buffer.

    `actuator_lag_s` > 0 gives each arm motor a first-order lag (MuJoCo ``dyntype="filter"``, time
    constant in ``actuator_dynprm[:, 0]``, which ``sim2real.randomization.DynamicsRandomization`` can draw).
    """
    if actuator_lag_s < 0:
        raise ValueError(f"actuator_lag_s must be >= 0, got {actuator_lag_s}.")
    assets_dir = fr3_assets_dir()
    robot = ET.parse(assets_dir / "fr3.xml").getroot()

    scene = ET.Element("mujoco", model="pick_cube")
    ET.SubElement(scene, "compiler", angle="radian", meshdir=str(assets_dir / "meshes"))
    ET.SubElement(scene, "option", timestep=f"{PHYSICS_DT_S}", integrator="implicitfast")
    visual = ET.SubElement(scene, "visual")
    offscreen_px = str(max(640, image_size))
    ET.SubElement(visual, "global", offwidth=offscreen_px, offheight=offscreen_px)
    # Shadows make software (OSMesa/llvmpipe) rendering ~50x slower; multisampling ~2x.
    ET.SubElement(visual, "quality", shadowsize="0", offsamples="0")
    ET.SubElement(visual, "headlight", diffuse="0.4 0.4 0.4", ambient="0.25 0.25 0.25", specular="0 0 0")
    default = copy.deepcopy(robot.find("default"))
    # Stiff contacts (time constant 2 physics steps): MuJoCo's default lets a 25 N squeeze sink
    # the pads ~1 cm into a 50 g cube, since contact stiffness scales with the light cube's mass.
    ET.SubElement(default, "geom", solref=f"{2 * PHYSICS_DT_S} 1", solimp="0.95 0.99 0.001")
    scene.append(default)
    asset = copy.deepcopy(robot.find("asset"))
    ET.SubElement(asset, "texture", name="wood", type="2d", builtin="flat", rgb1="0.62 0.5 0.36",
                  width="8", height="8")
    ET.SubElement(asset, "material", name="table", texture="wood", rgba="1 1 1 1")
    ET.SubElement(asset, "texture", name="sky", type="skybox", builtin="gradient", rgb1="0.55 0.6 0.68",
                  rgb2="0.2 0.22 0.25", width="32", height="32")
    ET.SubElement(asset, "material", name="cube", rgba="0.85 0.15 0.12 1")
    scene.append(asset)

    worldbody = ET.SubElement(scene, "worldbody")
    ET.SubElement(worldbody, "light", name="key", pos="1.5 -1 2.5", dir="-0.5 0.4 -1",
                  directional="true", diffuse="0.6 0.6 0.55", castshadow="false")
    ET.SubElement(worldbody, "light", name="fill", pos="-1 1 2", dir="0.4 -0.4 -1",
                  directional="true", diffuse="0.3 0.3 0.32", castshadow="false")
    ET.SubElement(worldbody, "geom", name="floor", type="plane", pos="0 0 -0.75", size="3 3 0.1",
                  rgba="0.3 0.33 0.36 1")
    # Table top at z = 0, where the robot base is mounted.
    ET.SubElement(worldbody, "geom", name="table", type="box", pos="0.45 0 -0.02", size="0.5 0.6 0.02",
                  material="table", friction="1 0.005 0.0001")
    ET.SubElement(worldbody, "camera", name="front", pos=_fmt(FRONT_CAMERA_POS_M),
                  xyaxes=_look_at_xyaxes(FRONT_CAMERA_POS_M, FRONT_CAMERA_TARGET_M), fovy="42")

    arm = copy.deepcopy(robot.find("worldbody")[0])
    _split_arm_link_geoms(arm)
    _keep_main_finger_pads(arm)
    hand = next(b for b in arm.iter("body") if b.get("name") == "hand")
    ET.SubElement(hand, "site", name="ee", pos=f"0 0 {EE_OFFSET_M}", size="0.005")
    # Wrist camera beside the hand, looking down past the fingertips.
    wrist_pos, wrist_target = (0.075, 0.0, 0.02), (0.0, 0.0, EE_OFFSET_M + 0.06)
    ET.SubElement(hand, "camera", name="wrist", pos=_fmt(wrist_pos),
                  xyaxes=_look_at_xyaxes(wrist_pos, wrist_target, up=(1.0, 0.0, 0.0)), fovy="70")
    worldbody.append(arm)

    cube = ET.SubElement(worldbody, "body", name="cube", pos=f"0.5 0 {CUBE_HALF_SIZE_M}")
    ET.SubElement(cube, "freejoint", name="cube_joint")
    # condim 4 adds torsional friction so a pinched cube does not spin out of the grasp.
    ET.SubElement(cube, "geom", name="cube", type="box", size=_fmt([CUBE_HALF_SIZE_M] * 3),
                  mass=f"{CUBE_MASS_KG}", material="cube", condim="4", friction="1.5 0.02 0.0001")

    # The arm is torque-driven by the controller; the gripper is one position servo on the
    # finger tendon, so a closed command squeezes with a bounded force.
    actuator = ET.SubElement(scene, "actuator")
    for joint, limit in zip(ARM_JOINTS, ARM_TORQUE_LIMITS_NM):
        if actuator_lag_s > 0:  # <motor> takes no dynamics: the same torque motor as a <general> with a filter
            ET.SubElement(actuator, "general", name=joint, joint=joint, ctrlrange=f"{-limit} {limit}",
                          ctrllimited="true", gainprm="1", dyntype="filter", dynprm=f"{actuator_lag_s}")
        else:
            ET.SubElement(actuator, "motor", name=joint, joint=joint, ctrlrange=f"{-limit} {limit}")
    ET.SubElement(actuator, "position", name="gripper", tendon="split", kp=f"{GRIPPER_KP}",
                  kv=f"{GRIPPER_KV}", ctrlrange=f"0 {GRIPPER_OPEN_M}",
                  forcerange=f"{-GRIPPER_FORCE_LIMIT_N} {GRIPPER_FORCE_LIMIT_N}")
    for section in ("tendon", "equality", "contact"):
        scene.append(copy.deepcopy(robot.find(section)))
    return ET.tostring(scene, encoding="unicode")


def _split_arm_link_geoms(arm: ET.Element) -> None:
    """Links 0-7 never touch the scene in this task: only the hand and fingers collide.

    Their detailed visual meshes (240k triangles) go to DETAILED_VISUAL_GROUP for `render()`,
    and their collision hulls (3k triangles) become the LIGHT_VISUAL_GROUP the policy's cameras
    draw, because software rendering time grows with triangle count.
    """
    for body in arm.iter("body"):
        if not body.get("name", "").startswith("fr3_link"):
            continue
        for geom in body.findall("geom"):
            if geom.get("class") == "visual":
                geom.set("group", str(DETAILED_VISUAL_GROUP))
            else:
                geom.attrib.update(contype="0", conaffinity="0", group=str(LIGHT_VISUAL_GROUP),
                                   rgba="0.92 0.92 0.92 1")


def _keep_main_finger_pads(arm: ET.Element) -> None:
    """Drop the four small pad boxes per finger: the main pad grips as well, with 12 contacts instead of 36."""
    small_pads = {f"fingertip_pad_collision_{i}" for i in range(2, 6)}
    for body in arm.iter("body"):
        for geom in body.findall("geom"):
            if geom.get("class") in small_pads:
                body.remove(geom)


def build_model(image_size: int = 128, actuator_lag_s: float = 0.0) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(build_scene_xml(image_size, actuator_lag_s))
