//! OMA object definitions and the registry of them.
//!
//! Definitions come from OMA LwM2M XML model files (`LWM2M/Object/Resources/Item`). The
//! registry starts from the models embedded in the binary ([`ObjectRegistry::builtin`]: objects
//! 0 to 7, IPSO 3303 and 3311); a configured `xml_dir` adds to them and overrides a built-in
//! object with the same id ([`ObjectRegistry::load_dir`]), so that a deployment can ship a newer
//! version of a model without losing the others. EMQX instead uses only `xml_dir`.

use std::{collections::BTreeMap, path::Path};

use thiserror::Error;

/// The models shipped in `lwm2m/xml/`, embedded at build time.
const BUILTIN_XML: &[(&str, &str)] = &[
    (
        "LWM2M_Security-v1_0.xml",
        include_str!("../xml/LWM2M_Security-v1_0.xml"),
    ),
    (
        "LWM2M_Server-v1_0.xml",
        include_str!("../xml/LWM2M_Server-v1_0.xml"),
    ),
    (
        "LWM2M_Access_Control-v1_0.xml",
        include_str!("../xml/LWM2M_Access_Control-v1_0.xml"),
    ),
    (
        "LWM2M_Device-v1_0.xml",
        include_str!("../xml/LWM2M_Device-v1_0.xml"),
    ),
    (
        "LWM2M_Connectivity_Monitoring-v1_0.xml",
        include_str!("../xml/LWM2M_Connectivity_Monitoring-v1_0.xml"),
    ),
    (
        "LWM2M_Firmware_Update-v1_0_1.xml",
        include_str!("../xml/LWM2M_Firmware_Update-v1_0_1.xml"),
    ),
    (
        "LWM2M_Location-v1_0.xml",
        include_str!("../xml/LWM2M_Location-v1_0.xml"),
    ),
    (
        "LWM2M_Connectivity_Statistics-v1_0.xml",
        include_str!("../xml/LWM2M_Connectivity_Statistics-v1_0.xml"),
    ),
    (
        "IPSO_Temperature-v1_0.xml",
        include_str!("../xml/IPSO_Temperature-v1_0.xml"),
    ),
    (
        "IPSO_Light_Control-v1_0.xml",
        include_str!("../xml/IPSO_Light_Control-v1_0.xml"),
    ),
];

/// Largest model file read by [`ObjectRegistry::load_dir`].
const MAX_XML_FILE: u64 = 4 * 1024 * 1024;

/// The data type of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// UTF-8 text.
    String,
    /// Signed integer.
    Integer,
    /// Unsigned integer (LwM2M 1.1).
    UnsignedInteger,
    /// IEEE 754 float.
    Float,
    /// true/false.
    Boolean,
    /// Bytes.
    Opaque,
    /// Seconds since the Unix epoch.
    Time,
    /// Object link `O:I`.
    Objlnk,
    /// CoRE link (LwM2M 1.1).
    Corelnk,
    /// No value (executable resources).
    None,
}

impl ResourceType {
    /// Parses the `<Type>` text of a model (case-insensitive; empty = [`ResourceType::None`]).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "string" => Self::String,
            "integer" => Self::Integer,
            "unsigned integer" | "unsignedinteger" => Self::UnsignedInteger,
            "float" => Self::Float,
            "boolean" => Self::Boolean,
            "opaque" => Self::Opaque,
            "time" => Self::Time,
            "objlnk" => Self::Objlnk,
            "corelnk" => Self::Corelnk,
            "" | "none" => Self::None,
            _ => return None,
        })
    }

    /// The name used in models and in EMQX commands (`"Unsigned Integer"`, `"Objlnk"`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Integer => "Integer",
            Self::UnsignedInteger => "Unsigned Integer",
            Self::Float => "Float",
            Self::Boolean => "Boolean",
            Self::Opaque => "Opaque",
            Self::Time => "Time",
            Self::Objlnk => "Objlnk",
            Self::Corelnk => "Corelnk",
            Self::None => "none",
        }
    }
}

/// What a resource allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Operations {
    /// Read (`R`).
    pub read: bool,
    /// Write (`W`).
    pub write: bool,
    /// Execute (`E`).
    pub execute: bool,
}

impl Operations {
    fn parse(text: &str) -> Self {
        let text = text.trim();
        Self {
            read: text.contains('R'),
            write: text.contains('W'),
            execute: text.contains('E'),
        }
    }
}

/// One resource of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// The resource id.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// Allowed operations.
    pub operations: Operations,
    /// Whether it has multiple instances.
    pub multiple: bool,
    /// Whether it is mandatory.
    pub mandatory: bool,
    /// Its data type.
    pub ty: ResourceType,
}

/// One object definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    /// The object id.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// Whether it has multiple instances.
    pub multiple: bool,
    /// Its resources by id.
    pub resources: BTreeMap<u16, ResourceDef>,
}

/// Why a model could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// Not well-formed XML.
    #[error("{file}: {source}")]
    Xml {
        /// The file or name.
        file: String,
        /// The parser's error.
        source: roxmltree::Error,
    },
    /// Well-formed, but not an LwM2M model.
    #[error("{file}: {what}")]
    Model {
        /// The file or name.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// The directory or a file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Object definitions by object id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRegistry {
    objects: BTreeMap<u16, ObjectDef>,
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(tag))
        .map(|c| c.text().unwrap_or(""))
}

/// Parses one model file's text into its object definitions (usually one).
pub fn parse_xml(name: &str, xml: &str) -> Result<Vec<ObjectDef>, ObjectError> {
    let model = |what: String| ObjectError::Model {
        file: name.to_owned(),
        what,
    };
    let doc = roxmltree::Document::parse(xml).map_err(|source| ObjectError::Xml {
        file: name.to_owned(),
        source,
    })?;
    let root = doc.root_element();
    if !root.has_tag_name("LWM2M") {
        return Err(model("root element is not LWM2M".into()));
    }
    let mut out = Vec::new();
    for object in root.children().filter(|n| n.has_tag_name("Object")) {
        let id_text = child_text(object, "ObjectID").ok_or_else(|| model("no ObjectID".into()))?;
        let id: u16 = id_text
            .trim()
            .parse()
            .map_err(|_| model(format!("bad ObjectID {id_text:?}")))?;
        let mut resources = BTreeMap::new();
        let items = object.children().find(|n| n.has_tag_name("Resources"));
        for item in items
            .iter()
            .flat_map(|r| r.children())
            .filter(|n| n.has_tag_name("Item"))
        {
            let rid_text = item.attribute("ID").unwrap_or("");
            let rid: u16 = rid_text
                .trim()
                .parse()
                .map_err(|_| model(format!("object {id}: bad Item ID {rid_text:?}")))?;
            let ty_text = child_text(item, "Type").unwrap_or("");
            let ty = ResourceType::parse(ty_text)
                .ok_or_else(|| model(format!("object {id} resource {rid}: type {ty_text:?}")))?;
            resources.insert(
                rid,
                ResourceDef {
                    id: rid,
                    name: child_text(item, "Name").unwrap_or("").trim().to_owned(),
                    operations: Operations::parse(child_text(item, "Operations").unwrap_or("")),
                    multiple: child_text(item, "MultipleInstances").map(str::trim)
                        == Some("Multiple"),
                    mandatory: child_text(item, "Mandatory").map(str::trim) == Some("Mandatory"),
                    ty,
                },
            );
        }
        out.push(ObjectDef {
            id,
            name: child_text(object, "Name").unwrap_or("").trim().to_owned(),
            multiple: child_text(object, "MultipleInstances").map(str::trim) == Some("Multiple"),
            resources,
        });
    }
    if out.is_empty() {
        return Err(model("no Object element".into()));
    }
    Ok(out)
}

impl ObjectRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The models embedded in the binary: objects 0 to 7, 3303 and 3311.
    pub fn builtin() -> Self {
        let mut registry = Self::new();
        for (name, xml) in BUILTIN_XML {
            // The embedded files are tested to parse; a failure here cannot come from input.
            if let Ok(defs) = parse_xml(name, xml) {
                for def in defs {
                    registry.insert(def);
                }
            }
        }
        registry
    }

    /// Adds or replaces a definition.
    pub fn insert(&mut self, def: ObjectDef) {
        self.objects.insert(def.id, def);
    }

    /// Adds the definitions of one model file's text (replacing same-id ones).
    pub fn add_xml(&mut self, name: &str, xml: &str) -> Result<(), ObjectError> {
        for def in parse_xml(name, xml)? {
            self.insert(def);
        }
        Ok(())
    }

    /// Adds every `*.xml` file of `dir` (sorted by name, so the outcome is deterministic),
    /// overriding built-in objects with the same id. Called once at start by the gateway.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, ObjectError> {
        let io = |file: &Path, source| ObjectError::Io {
            file: file.display().to_string(),
            source,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
            .collect();
        files.sort();
        for file in &files {
            let len = std::fs::metadata(file).map_err(|e| io(file, e))?.len();
            if len > MAX_XML_FILE {
                return Err(ObjectError::Model {
                    file: file.display().to_string(),
                    what: format!("{len} bytes is larger than {MAX_XML_FILE}"),
                });
            }
            let xml = std::fs::read_to_string(file).map_err(|e| io(file, e))?;
            self.add_xml(&file.display().to_string(), &xml)?;
        }
        Ok(files.len())
    }

    /// The definition of an object.
    pub fn object(&self, id: u16) -> Option<&ObjectDef> {
        self.objects.get(&id)
    }

    /// The definition of a resource.
    pub fn resource(&self, object: u16, resource: u16) -> Option<&ResourceDef> {
        self.objects.get(&object)?.resources.get(&resource)
    }

    /// The ids of all known objects, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.objects.keys().copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_model_parses() {
        for (name, xml) in BUILTIN_XML {
            parse_xml(name, xml).unwrap();
        }
        let registry = ObjectRegistry::builtin();
        assert_eq!(
            registry.ids().collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6, 7, 3303, 3311]
        );
    }

    #[test]
    fn device_object_resources() {
        let registry = ObjectRegistry::builtin();
        let device = registry.object(3).unwrap();
        assert_eq!(device.name, "Device");
        assert!(!device.multiple);
        let manufacturer = registry.resource(3, 0).unwrap();
        assert_eq!(manufacturer.name, "Manufacturer");
        assert_eq!(manufacturer.ty, ResourceType::String);
        assert_eq!(
            manufacturer.operations,
            Operations {
                read: true,
                ..Default::default()
            }
        );
        let reboot = registry.resource(3, 4).unwrap();
        assert!(reboot.operations.execute);
        assert_eq!(reboot.ty, ResourceType::None);
        let power = registry.resource(3, 6).unwrap();
        assert!(power.multiple);
        assert_eq!(registry.resource(3, 13).unwrap().ty, ResourceType::Time);
        assert_eq!(
            registry.resource(3311, 5850).unwrap().ty,
            ResourceType::Boolean
        );
        assert_eq!(
            registry.resource(3303, 5700).unwrap().ty,
            ResourceType::Float
        );
        assert_eq!(registry.resource(6, 4).unwrap().ty, ResourceType::Opaque);
        assert!(registry.resource(3, 99).is_none());
    }

    #[test]
    fn a_directory_adds_and_overrides() {
        let dir = std::env::temp_dir().join(format!("lwm2m-xml-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let custom = r#"<LWM2M><Object><Name>Custom</Name><ObjectID>31024</ObjectID>
            <MultipleInstances>Multiple</MultipleInstances><Resources>
            <Item ID="1"><Name>Text</Name><Operations>RW</Operations>
            <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>
            <Type>String</Type></Item></Resources></Object></LWM2M>"#;
        let device = r#"<LWM2M><Object><Name>My Device</Name><ObjectID>3</ObjectID>
            <Resources/></Object></LWM2M>"#;
        std::fs::write(dir.join("a.xml"), custom).unwrap();
        std::fs::write(dir.join("b.xml"), device).unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let mut registry = ObjectRegistry::builtin();
        assert_eq!(registry.load_dir(&dir).unwrap(), 2);
        assert_eq!(
            registry.resource(31024, 1).unwrap().ty,
            ResourceType::String
        );
        assert_eq!(registry.object(3).unwrap().name, "My Device");
        assert!(registry.object(4).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_models_are_refused() {
        assert!(matches!(
            parse_xml("x", "<LWM2M>"),
            Err(ObjectError::Xml { .. })
        ));
        assert!(matches!(
            parse_xml("x", "<Other/>"),
            Err(ObjectError::Model { .. })
        ));
        assert!(matches!(
            parse_xml(
                "x",
                "<LWM2M><Object><ObjectID>x</ObjectID></Object></LWM2M>"
            ),
            Err(ObjectError::Model { .. })
        ));
        let bad_type = r#"<LWM2M><Object><ObjectID>9</ObjectID><Resources><Item ID="0">
            <Type>Complex</Type></Item></Resources></Object></LWM2M>"#;
        assert!(matches!(
            parse_xml("x", bad_type),
            Err(ObjectError::Model { .. })
        ));
    }
}
