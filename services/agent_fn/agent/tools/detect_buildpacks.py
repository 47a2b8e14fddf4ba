"""Stacks built with Google Cloud's buildpacks rather than a Dockerfile of ours: Java (Maven,
Gradle), PHP (Composer), Ruby (Bundler) and .NET. The analysis still names the stack, its
version, framework, build tool and entry point, with evidence, and says how it will build."""

from __future__ import annotations

import json
import re
import shutil

from .analysis_model import Evidence, Framework, Language
from .detect_common import Findings, file_evidence, first_match, supported
from .repo_files import RepoFiles

JAVA_VERSIONS = [(17, 0), (21, 0)]
PHP_VERSIONS = [(8, 1), (8, 2), (8, 3), (8, 4)]
RUBY_VERSIONS = [(3, 2), (3, 3), (3, 4)]
DOTNET_VERSIONS = [(8, 0), (9, 0)]

_JAVA_VERSION = (
    re.compile(r"<(?:java\.version|maven\.compiler\.release|maven\.compiler\.source|release)>"
               r"\s*(?:1\.)?(\d+)\s*<"),
    re.compile(r"JavaLanguageVersion\.of\(\s*(\d+)\s*\)"),
    re.compile(r"(?:source|target)Compatibility\s*=\s*['\"]?(?:JavaVersion\.VERSION_)?(?:1[._])?(\d+)"),
)  # fmt: skip
_SPRING = re.compile(r"spring-boot-starter|org\.springframework\.boot")
_SPRING_APP = re.compile(r"@SpringBootApplication")
_JAVA_MAIN = re.compile(r"public\s+static\s+void\s+main\s*\(")
_JAVA_PORT = re.compile(r"^\s*server\.port\s*[=:]\s*(?:\$\{PORT:)?(\d{2,5})")
_PHP_FRAMEWORKS: tuple[tuple[str, Framework], ...] = (
    ("laravel/framework", "laravel"),
    ("symfony/framework-bundle", "symfony"),
    ("slim/slim", "slim"),
)
_RUBY_VERSION = re.compile(r"^\s*ruby\s+['\"]~?>?=?\s*(\d+\.\d+)")
_GEM = re.compile(r"^\s*gem\s+['\"](rails|sinatra)['\"]")
_TARGET_FRAMEWORK = re.compile(r"<TargetFramework>\s*net(\d+)\.(\d+)\s*<")
_WEB_SDK = re.compile(r"Sdk\s*=\s*\"Microsoft\.NET\.Sdk\.Web\"")


def detect_buildpack_stack(repo: RepoFiles) -> Findings | None:
    for detect in (_java, _php, _ruby, _dotnet):
        found = detect(repo)
        if found is not None:
            found.server = found.server or "buildpack"
            return found
    return None


def _new(language: Language, manager: str, manifest: str) -> Findings:
    found = Findings(language=language, manifest=manifest)
    found.package_manager = manager  # type: ignore[assignment]
    found.build_tool = manager
    found.add("language", file_evidence(manifest))
    found.add("package_manager", file_evidence(manifest))
    found.default_port = 8080
    return found


def _version(
    found: Findings, raw: str, candidates: list[tuple[int, int]], what: str, major_only: bool
) -> None:
    picked, note = supported(raw, candidates, what=what, major_only=major_only)
    found.language_version = picked
    if note:
        found.warnings.append(note)
    if picked:
        found.build_env["GOOGLE_RUNTIME_VERSION"] = picked


def _java(repo: RepoFiles) -> Findings | None:
    manifest = repo.first("pom.xml", "build.gradle.kts", "build.gradle")
    if manifest is None:
        return None
    found = _new("java", "maven" if manifest == "pom.xml" else "gradle", manifest)
    for pattern in _JAVA_VERSION:
        if hit := first_match(repo, [manifest], pattern):
            _version(found, hit[2].group(1), JAVA_VERSIONS, "Java", True)
            found.add("language_version", repo.evidence(hit[0], hit[1]))
            break
    sources = repo.with_suffix(".java", ".kt", limit=300)
    if hit := first_match(repo, [manifest], _SPRING):
        found.framework = "spring-boot"
        found.add("framework", repo.evidence(hit[0], hit[1]))
        entry = first_match(repo, sources, _SPRING_APP) or first_match(repo, sources, _JAVA_MAIN)
    else:
        entry = first_match(repo, sources, _JAVA_MAIN)
        if entry is not None:
            found.framework = "java"
            found.add("framework", repo.evidence(entry[0], entry[1]))
    if found.framework is None:
        return found
    found.entry_point = entry[0] if entry else manifest
    if entry:
        found.add("entry_point", repo.evidence(entry[0], entry[1]))
    found.app_target = "target" if manifest == "pom.xml" else "build/libs"
    found.build_output = found.app_target
    found.server = "java"
    for props in (
        "src/main/resources/application.properties",
        "src/main/resources/application.yml",
    ):
        if repo.exists(props) and (hit := first_match(repo, [props], _JAVA_PORT)):
            found.port = int(hit[2].group(1))
            found.add("port", repo.evidence(hit[0], hit[1]))
            found.reads_port_env = "${PORT" in hit[2].string
    tool = "mvn" if manifest == "pom.xml" else "gradle"
    wrapper = repo.first("mvnw" if manifest == "pom.xml" else "gradlew")
    if shutil.which("java") is None or (wrapper is None and shutil.which(tool) is None):
        found.local_run = f"A local run needs Java and {tool}, which this machine does not have."
    return found


def _php(repo: RepoFiles) -> Findings | None:
    if not repo.exists("composer.json"):
        return None
    found = _new("php", "composer", "composer.json")
    try:
        composer = json.loads(repo.read("composer.json") or "{}")
    except json.JSONDecodeError:
        composer = {}
    require = composer.get("require") if isinstance(composer, dict) else None
    require = require if isinstance(require, dict) else {}
    if isinstance(spec := require.get("php"), str) and (m := re.search(r"(\d+)\.(\d+)", spec)):
        _version(found, f"{m.group(1)}.{m.group(2)}", PHP_VERSIONS, "PHP", False)
        found.add("language_version", _json_line(repo, "php"))
    found.framework = "php"
    for package, framework in _PHP_FRAMEWORKS:
        if package in require:
            found.framework = framework
            found.add("framework", _json_line(repo, package))
            break
    entry = repo.first("public/index.php", "index.php", "web/index.php")
    found.entry_point = entry or "composer.json"
    found.app_target = (entry.rpartition("/")[0] or ".") if entry else "."
    found.add("entry_point", file_evidence(found.entry_point))
    if shutil.which("php") is None:
        found.local_run = "A local run needs PHP, which this machine does not have."
    return found


def _ruby(repo: RepoFiles) -> Findings | None:
    if not repo.exists("Gemfile"):
        return None
    found = _new("ruby", "bundler", "Gemfile")
    found.lock_file = repo.first("Gemfile.lock")
    if repo.exists(".ruby-version"):
        text = (repo.read(".ruby-version") or "").strip().removeprefix("ruby-")
        if m := re.match(r"(\d+)\.(\d+)", text):
            _version(found, f"{m.group(1)}.{m.group(2)}", RUBY_VERSIONS, "Ruby", False)
            found.add("language_version", repo.evidence(".ruby-version", 1))
    elif hit := first_match(repo, ["Gemfile"], _RUBY_VERSION):
        _version(found, hit[2].group(1), RUBY_VERSIONS, "Ruby", False)
        found.add("language_version", repo.evidence(hit[0], hit[1]))
    found.framework = "ruby"
    if hit := first_match(repo, ["Gemfile"], _GEM):
        found.framework = "rails" if hit[2].group(1) == "rails" else "sinatra"
        found.add("framework", repo.evidence(hit[0], hit[1]))
    found.entry_point = repo.first("config.ru", "app.rb") or "Gemfile"
    found.app_target = found.entry_point
    found.add("entry_point", file_evidence(found.entry_point))
    if shutil.which("ruby") is None:
        found.local_run = "A local run needs Ruby, which this machine does not have."
    return found


def _dotnet(repo: RepoFiles) -> Findings | None:
    projects = repo.with_suffix(".csproj", ".fsproj", limit=20)
    if not projects:
        return None
    web = [p for p in projects if first_match(repo, [p], _WEB_SDK)]
    project = (web or projects)[0]
    found = _new("dotnet", "dotnet", project)
    if hit := first_match(repo, [project], _TARGET_FRAMEWORK):
        _version(found, f"{hit[2].group(1)}.{hit[2].group(2)}", DOTNET_VERSIONS, ".NET", False)
        found.add("language_version", repo.evidence(hit[0], hit[1]))
    if web:
        found.framework = "aspnet"
        found.add("framework", file_evidence(project, 'Sdk="Microsoft.NET.Sdk.Web"'))
    found.entry_point = (
        repo.first(*(f"{project.rpartition('/')[0]}/Program.cs".lstrip("/"),), "Program.cs")
        or project
    )
    found.app_target = project
    found.add("entry_point", file_evidence(found.entry_point))
    if found.framework is None:
        return found
    if shutil.which("dotnet") is None:
        found.local_run = "A local run needs the .NET SDK, which this machine does not have."
    return found


def _json_line(repo: RepoFiles, key: str, rel: str = "composer.json") -> Evidence:
    hit = first_match(repo, [rel], re.compile(r'"' + re.escape(key) + r'"\s*:'))
    return repo.evidence(rel, hit[1]) if hit else file_evidence(rel)
