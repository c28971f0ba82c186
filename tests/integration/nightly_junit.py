"""Reading a nightly-boot JUnit file back, for test_nightly_boot.py: is it consistent, is it valid against
tests/nightly/junit.xsd (Jenkins' junit-10.xsd), and what did each case give."""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def junit_consistent(path):
    """(ok, why): testsuites > testsuite > testcase(name, classname, time), counts add up."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        return False, f"does not parse: {e}"
    if root.tag != "testsuites":
        return False, f"root is {root.tag}"
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root:
        if suite.tag != "testsuite":
            return False, f"child {suite.tag}"
        cases = suite.findall("testcase")
        got = {"tests": len(cases), "failures": sum(1 for c in cases if c.find("failure") is not None),
               "errors": sum(1 for c in cases if c.find("error") is not None),
               "skipped": sum(1 for c in cases if c.find("skipped") is not None)}
        for key, n in got.items():
            if int(suite.get(key, -1)) != n:
                return False, f"testsuite {suite.get('name')} {key}={suite.get(key)}, counted {n}"
            total[key] += n
        for c in cases:
            if not c.get("name") or not c.get("classname") or float(c.get("time", "x")) < 0:
                return False, f"testcase without name/classname/time: {c.attrib}"
            for tag in ("skipped", "failure", "error"):
                el = c.find(tag)
                if el is not None and not el.get("message"):
                    return False, f"{tag} without message in {c.get('name')}"
    for key, n in total.items():  # junit-10.xsd has no skipped attribute on testsuites
        if key != "skipped" and int(root.get(key, -1)) != n:
            return False, f"testsuites {key}={root.get(key)}, counted {n}"
    return True, ""


def schema_valid(path):
    """(ok, why) from xmllint against tests/nightly/junit.xsd; (True, "") without xmllint."""
    if not shutil.which("xmllint"):
        return True, ""
    p = subprocess.run(["xmllint", "--noout", "--schema", os.path.join(ROOT, "tests", "nightly", "junit.xsd"), path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode == 0, p.stdout


def results(path):
    root = ET.parse(path).getroot()
    out = {}
    for c in root.iter("testcase"):
        status = next((t for t in ("skipped", "failure", "error") if c.find(t) is not None), "passed")
        el = c.find(status) if status != "passed" else None
        out[c.get("name")] = (status, el.get("message") if el is not None else "")
    return out
